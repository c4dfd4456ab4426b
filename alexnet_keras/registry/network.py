"""The wire: a bounded TCP connect probe (name lookup included) and streaming with progress.

A machine without a network must learn it in seconds, not after the
system's minutes of SYN retries or a resolver's timeouts. Downloads (weights
releases here, TFDS archives in `data.preparation`) probe the host first.
"""

import hashlib
import http.client
import socket
import threading
import urllib.parse
import urllib.request

from alexnet_keras import limits
from alexnet_keras.progress import Progress

__all__ = ["connect_problem", "stream"]

_CHUNK = 1 << 20


def _resolve(host, port, timeout):
    """`getaddrinfo`, given up after `timeout` seconds (a broken resolver can take minutes)."""
    found = {}

    def lookup():
        try:
            found["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            found["error"] = e

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise OSError(f"name lookup of {host} did not finish in {timeout:g} s")
    if "error" in found:
        raise OSError(f"cannot resolve {host}: {found['error']}")
    return found["addresses"]


def connect_problem(url, timeout=None):
    """Returns why a TCP connection to `url`'s host (or its proxy) fails, or None if it opens.

    The probe gives up after `timeout` seconds (default
    `limits.CONNECT_TIMEOUT_SECONDS`), name lookup included, so a machine
    without a network learns it at once. It sends nothing.

    Example:

    >>> from alexnet_keras import registry
    >>> registry.connect_problem("http://127.0.0.1:1/x", timeout=1) is not None
    True
    """
    timeout = limits.CONNECT_TIMEOUT_SECONDS if timeout is None else timeout
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "//" in proxy else f"http://{proxy}")
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return f"no host in {url}"
    problem = OSError(f"no address for {host}")
    try:
        for family, kind, proto, _, address in _resolve(host, port, timeout):
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(timeout)
                try:
                    sock.connect(address)
                    return None
                except OSError as e:
                    problem = e
        raise problem
    except TimeoutError:
        return f"no connection to {host}:{port} within {timeout:g} s"
    except OSError as e:
        return f"cannot connect to {host}:{port}: {e.strerror or e}"


def stream(response, url, tmp, label, progress):
    """Streams an open `response` into the file `tmp`, drawing a `Progress` line (size, rate, ETA).

    Returns:
        `(digests, Content-Length or None)`, digests as `registry.file_digests`.

    Raises:
        ValueError: the connection broke or a read timed out; names the URL.
    """
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    bar = Progress(length, label=label, unit="MB", enabled=progress, scale=1e6, decimals=1)
    sha1, sha256, size = hashlib.sha1(), hashlib.sha256(), 0
    try:
        while True:
            # read(n) returns b"" when the server closes early, with no error: the
            # caller's byte count against Content-Length is what catches that.
            try:
                chunk = response.read(_CHUNK)
            except (http.client.IncompleteRead, OSError) as e:
                raise ValueError(
                    f"{url}: truncated transfer after {size} bytes ({type(e).__name__}); "
                    "the partial download was deleted"
                ) from None
            if not chunk:
                break
            tmp.write(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
            bar.update(size)
    finally:
        # End the progress line even on failure, so an error message starts clean.
        bar.close()
    return {"sha1": sha1.hexdigest(), "sha256": sha256.hexdigest(), "size": size}, length
