"""Keystone's public WSGI application for gunicorn (`wsgi:application`).

Keystone parses `sys.argv` with oslo.config when it initializes: under gunicorn that is
gunicorn's own command line, which it rejects. Clear it first. The configuration comes from
`OS_KEYSTONE_CONFIG_DIR` (`keystone.conf` in it), set by `tests/keystone/start`.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.server import wsgi as _keystone_wsgi  # noqa: E402

application = _keystone_wsgi.initialize_public_application()
