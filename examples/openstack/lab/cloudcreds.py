"""The admin credentials of a cloud, for the lab's suites (smoke/tempest-run,
rally/rally-run): a clouds.yaml entry (OS_CLIENT_CONFIG_FILE + OS_CLOUD, its secure.yaml
beside it merged in, as openstacksdk and rollci read them), else the plain OS_* variables.
Errors are `Unusable`, whose text the caller reports."""

import json
import os
import subprocess
import sys


class Unusable(Exception):
    pass


def fail(message):
    raise Unusable(message)


def load_yaml(python, path):
    """Parses a YAML file with a venv's PyYAML (the agent's python3 may lack it)."""
    code = ("import json, sys, yaml\n"
            "json.dump(yaml.safe_load(open(sys.argv[1])) or {}, sys.stdout)\n")
    out = subprocess.run([python, "-c", code, path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=sys.stderr)
    if out.returncode != 0:
        fail(f"cannot read {path}")
    return json.loads(out.stdout)


def merge(base, over):
    """`over` on top of `base`, recursing into mappings."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def credentials(python):
    env = os.environ
    creds = {}
    config, cloud = env.get("OS_CLIENT_CONFIG_FILE"), env.get("OS_CLOUD")
    if cloud:
        if not config:
            fail("OS_CLOUD is set but OS_CLIENT_CONFIG_FILE is not")
        clouds = load_yaml(python, config).get("clouds") or {}
        entry = clouds.get(cloud)
        if not isinstance(entry, dict):
            fail(f"no cloud `{cloud}` in {config} (clouds: {', '.join(clouds) or 'none'})")
        # openstacksdk's split: the secrets of an entry in secure.yaml beside clouds.yaml,
        # merged key by key (secure.yaml wins), as rollci itself reads them.
        secure = os.path.join(os.path.dirname(config), "secure.yaml")
        if os.path.exists(secure):
            more = (load_yaml(python, secure).get("clouds") or {}).get(cloud) or {}
            entry = merge(entry, more)
        auth = entry.get("auth") or {}
        creds = {
            "auth_url": auth.get("auth_url"),
            "username": auth.get("username"),
            "password": auth.get("password"),
            "project_name": auth.get("project_name") or auth.get("tenant_name"),
            "user_domain_name": auth.get("user_domain_name") or auth.get("domain_name"),
            "project_domain_name": auth.get("project_domain_name") or auth.get("domain_name"),
            "region_name": entry.get("region_name"),
            "cacert": entry.get("cacert"),
            "insecure": entry.get("verify") is False or entry.get("insecure") is True,
        }
    else:
        creds = {
            "auth_url": env.get("OS_AUTH_URL"),
            "username": env.get("OS_USERNAME"),
            "password": env.get("OS_PASSWORD"),
            "project_name": env.get("OS_PROJECT_NAME") or env.get("OS_TENANT_NAME"),
            "user_domain_name": env.get("OS_USER_DOMAIN_NAME"),
            "project_domain_name": env.get("OS_PROJECT_DOMAIN_NAME"),
            "region_name": env.get("OS_REGION_NAME"),
            "cacert": env.get("OS_CACERT"),
            "insecure": env.get("OS_INSECURE", "").lower() in ("1", "true", "yes"),
        }
    missing = [k for k in ("auth_url", "username", "password", "project_name")
               if not creds.get(k)]
    if missing:
        source = f"cloud `{cloud}` of {config}" if cloud else "the OS_* environment"
        fail(f"{source} lacks {', '.join(missing)}")
    creds["user_domain_name"] = creds["user_domain_name"] or "Default"
    creds["project_domain_name"] = creds["project_domain_name"] or "Default"
    creds["region_name"] = creds["region_name"] or "RegionOne"
    url = creds["auth_url"].rstrip("/")
    if not url.endswith("/v3"):
        url += "/v3"
    creds["auth_url"] = url
    return creds
