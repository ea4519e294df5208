"""The WSGI application of one OpenStack service for gunicorn (`wsgi:application`).

`ROLLCI_WSGI_MODULE` names the service's own entry point (`keystone.wsgi.api`,
`placement.wsgi.api`, `glance.wsgi.api`); each reads its configuration folder from its own
variable (`OS_KEYSTONE_CONFIG_DIR`, ...), set by the playbook that starts the node.
Keystone and Placement parse `sys.argv` with oslo.config when they initialize: under gunicorn
that is gunicorn's own command line, which they reject. Clear it first.
"""

import importlib
import os
import sys

sys.argv = sys.argv[:1]

application = importlib.import_module(os.environ["ROLLCI_WSGI_MODULE"]).application
