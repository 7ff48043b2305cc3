#!/usr/bin/env python
"""Django's command line for the example: ``python example_apps/django_app/manage.py runserver``.

``runserver`` listens on 127.0.0.1:$PORT when PORT is set and no address is given.
"""

import os
import sys
from pathlib import Path


def main() -> None:
    # Run from anywhere: the project is imported as example_apps.django_app.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_apps.django_app.settings")
    from django.core.management import execute_from_command_line

    argv = list(sys.argv)
    port = os.environ.get("PORT")
    if port and argv[1:2] == ["runserver"] and all(arg.startswith("-") for arg in argv[2:]):
        argv.append(f"127.0.0.1:{port}")
    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
