import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsteam.settings.local")

application = get_wsgi_application()

# Everything loaded so far (settings, apps, models) lives as long as the process: keep it out of the
# collector's full passes, which otherwise walk it again during large requests (the board's slow tail).
gc.freeze()
