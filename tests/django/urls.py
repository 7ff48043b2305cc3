from django.urls import path, re_path

from . import views

urlpatterns = [
    path("items/<int:item_id>", views.item),
    path("", views.index),
    re_path(r"^legacy/(?P<code>[a-z]+)/$", views.legacy),
    path("boom", views.boom),
    path("missing", views.missing),
    path("stream", views.stream),
    path("stream-fails", views.stream_fails),
    path("astream", views.astream),
    path("decorated", views.decorated),
    path("cbv/<int:n>", views.Scored.as_view()),
    path("async/<int:n>", views.async_view),
    path("v/<int:n>", views.value),
    path("av/<int:n>", views.async_value),
    path("download", views.download),
    path("health", views.health),
]
