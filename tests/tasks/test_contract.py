"""Every registered one-pass task meets the task contract (tests/contract/tasks.py): export parity, int8,
bundle round trip, the runtime API and serve, each on a tiny model. A new task is covered as soon as
it is registered, and fails here until the contract has a tiny-model builder for it. Generative tasks
(``Task.generative``) run their own chain (KV-cache export, generate, SSE): tests/generation holds them to it."""

import pytest

from edgekit.tasks import all_tasks
from tests.contract.tasks import TaskContract


class TestTaskContract(TaskContract):
    @pytest.fixture(scope="class", params=[t for t in all_tasks() if not t.generative], ids=lambda t: t.name)
    def task(self, request):
        return request.param
