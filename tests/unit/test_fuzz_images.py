"""The fuzz image corpus says the truth about its samples: what it calls decodable decodes to the
size it claims, what it calls bad is refused with InvalidInput, and nothing makes the decoder
raise anything else. (A wrong claim here would show up as a false violation in test_fuzz.py.)"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from labelgate.bench.fuzz_images import header_bombs, images
from labelgate.core.errors import InvalidInput
from labelgate.server.imaging import decode_image

MAX_PIXELS = 200_000


@settings(max_examples=400, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(images(MAX_PIXELS))
def test_each_sample_decodes_or_is_refused_as_it_claims(sample):
    try:
        decoded = decode_image(sample.data, MAX_PIXELS)
    except InvalidInput:
        assert sample.decodes is not True, sample.label
        return
    assert sample.decodes is not False, sample.label
    if sample.decodes:
        assert (decoded.width, decoded.height) == sample.size, sample.label


@pytest.mark.parametrize("max_pixels", [200_000, 100_000_000])
def test_header_only_bombs_are_small_and_refused_at_any_limit(max_pixels):
    """Sizes over the limit (or with no pixels), claimed by a few bytes, at the test server's limit
    and at the default one the long fuzz runs may meet."""

    @settings(max_examples=60, derandomize=True, deadline=None, database=None)
    @given(header_bombs(max_pixels))
    def check(sample):
        assert len(sample.data) < 4096, sample.label
        if sample.decodes is False:
            with pytest.raises(InvalidInput):
                decode_image(sample.data, max_pixels)

    check()
