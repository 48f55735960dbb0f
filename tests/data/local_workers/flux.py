"""Answers like RunPod's public Flux endpoints (runpod-workers/public-ep, flux-dev/src/txt2img_flux_dev.py): the image
at a URL, `image_url`, and the cost. The URL is served from loopback by this process, as the endpoint's storage
would serve it."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import runpod
from tiny_png import png

IMAGES: dict[str, bytes] = {}


class Storage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = IMAGES.get(self.path)
        self.send_response(200 if data else 404)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)
threading.Thread(target=storage.serve_forever, daemon=True).start()


def handler(job: dict[str, Any]) -> Any:
    seed = job["input"]["seed"]
    path = f"/images/{job['id']}.png"
    IMAGES[path] = png(seed)
    return {"image_url": f"http://127.0.0.1:{storage.server_address[1]}{path}", "cost": 0.0025}


runpod.serverless.start({"handler": handler})
