import json
import threading
import urllib.request

import pytest

from hello_service.server import make_server


@pytest.fixture()
def base_url():
    server = make_server(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_health(base_url):
    assert get(base_url + "/health") == (200, {"status": "ok", "version": "1.0.0"})


def test_hello(base_url):
    assert get(base_url + "/hello?name=Ada&excited=1")[1] == {"message": "Hello, Ada!"}


def test_stats_counts_requests(base_url):
    get(base_url + "/health")
    assert get(base_url + "/stats")[1]["requests"] == 2
