from django.urls import path

from . import views

urlpatterns = [
    path("predict", views.predict),
    path("items/<int:item_id>", views.ItemView.as_view()),
    path("apredict", views.predict_async),
    path("stream", views.stream),
    path("astream", views.stream_async),
    path("fail", views.fail),
    path("health", views.health),
]
