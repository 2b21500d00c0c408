"""Read a Secret back as the tests compare it: decoded, or None when it does not exist."""

import base64


def secret_data(core, namespace, name):
    """`core` is a kubernetes.client.CoreV1Api; returns {key: str} or None on 404."""
    from kubernetes.client.exceptions import ApiException

    try:
        secret = core.read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
