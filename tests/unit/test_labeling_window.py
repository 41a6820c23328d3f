"""The labeling job's in-flight window: inputs are pulled lazily and never more than `window` ahead
of the results handed back (bounded memory), every input comes back once, errors per item."""

from __future__ import annotations

from labelgate.client.labeling.window import bounded_map


def test_never_more_than_the_window_in_flight_and_every_item_back_once():
    pulled, handed_back, ahead = [], [], []

    def items():
        for number in range(50):
            pulled.append(number)
            ahead.append(len(pulled) - len(handed_back))
            yield number

    def square(number: int) -> int:
        if number == 13:
            raise ValueError("thirteen")
        return number * number

    for item, result, error in bounded_map(square, items(), workers=3, window=5):
        handed_back.append(item)
        assert (error is None and result == item * item) or (item == 13 and str(error) == "thirteen" and result is None)
    assert sorted(handed_back) == list(range(50))
    assert max(ahead) <= 5


def test_stopping_early_stops_pulling():
    pulled = []

    def items():
        for number in range(1000):
            pulled.append(number)
            yield number

    for _ in bounded_map(lambda n: n, items(), workers=2, window=4):
        break
    assert len(pulled) <= 4 + 1
