import pytest
import torch

from pavflow.policy.model import char_tokenizer

ALPHABET = "0123456789+-*=\nQA:"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny models: thread start-up and contention on a busy 2-core machine cost more than they save
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer(ALPHABET)
