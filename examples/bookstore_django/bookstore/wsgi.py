import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
KCK_PACKAGE_DIR = HERE.parent.parent / "django"
if (KCK_PACKAGE_DIR / "kck" / "__init__.py").is_file() and str(KCK_PACKAGE_DIR) not in sys.path:
    sys.path.insert(0, str(KCK_PACKAGE_DIR))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookstore.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
