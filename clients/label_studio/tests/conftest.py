import pytest

from fake_label_studio import FakeLabelStudio


@pytest.fixture
def fake_label_studio():
    server = FakeLabelStudio()
    yield server
    server.close()
