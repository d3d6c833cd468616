"""Where RunPod is: the REST API's base URL and the template of a pod port's proxy URL.

Read here and nowhere else. The environment can point both elsewhere (tests and the bench point
them at the fake RunPod server on 127.0.0.1); users never need to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from app.core.runpod.agent_client import DEFAULT_PROXY_TEMPLATE, proxy_url
from app.core.runpod.client import RUNPOD_API_BASE, RunPodClient

API_URL_ENV = "TUNEDECK_RUNPOD_API_URL"
PROXY_TEMPLATE_ENV = "TUNEDECK_RUNPOD_PROXY_TEMPLATE"


@dataclass(frozen=True)
class RunPodEndpoints:
    api_url: str = RUNPOD_API_BASE
    proxy_template: str = DEFAULT_PROXY_TEMPLATE

    def proxy_url(self, pod_id: str, port: int) -> str:
        return proxy_url(pod_id, port, self.proxy_template)

    def client(self, api_key: str) -> RunPodClient:
        return RunPodClient(api_key, base_url=self.api_url)


def runpod_endpoints(environ: Mapping[str, str] | None = None) -> RunPodEndpoints:
    env = os.environ if environ is None else environ
    return RunPodEndpoints(
        api_url=env.get(API_URL_ENV) or RUNPOD_API_BASE,
        proxy_template=env.get(PROXY_TEMPLATE_ENV) or DEFAULT_PROXY_TEMPLATE,
    )
