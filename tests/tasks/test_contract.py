"""Every registered task meets the task contract (tests/contract/tasks.py): export parity, int8,
bundle round trip, the runtime API and serve, each on a tiny model. A new task is covered as soon as
it is registered, and fails here until the contract has a tiny-model builder for it."""

import pytest

from edgekit.tasks import all_tasks
from tests.contract.tasks import TaskContract


class TestTaskContract(TaskContract):
    @pytest.fixture(scope="class", params=all_tasks(), ids=lambda t: t.name)
    def task(self, request):
        return request.param
