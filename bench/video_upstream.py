"""The bare upstream loop the video section compares the service with: sam2's own
`SAM2VideoPredictor` in process (`init_state` on a JPEG folder, `add_new_points_or_box`,
`propagate_in_video`), with the weights and the autocast the server's tracker uses. Run as a
module, it tracks a clip in a process of its own and prints that process's RSS after two frame
counts as one JSON line:

    python -m labelgate.bench.video_upstream CONFIG CHECKPOINT DEVICE FOLDER SMALL LARGE [OVERRIDE...]
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from labelgate.bench.clips import disc_centre, square_box
from labelgate.bench.rss import rss_bytes


class UpstreamTracker:
    def __init__(self, config: str, checkpoint: Path, device: str, overrides: Sequence[str] = ()):
        from labelgate.models.sam2.video_backend import Sam2TrackingTorchBackend

        # The server's backend holds an upstream SAM2VideoPredictor on the checkpoint's weights, and
        # the autocast it runs under (bf16, as upstream's README runs it): the same here.
        backend = Sam2TrackingTorchBackend.from_checkpoint(config, checkpoint, device, overrides)
        self.predictor, self.autocast = backend.predictor, backend.tracking_autocast

    def track(self, folder: Path, width: int, height: int, on_frame: Callable[[int], None] = lambda index: None) -> int:
        """The clip's two objects prompted on frame 0 (a box, a click) and tracked to its end; frames tracked."""
        import numpy as np

        frames = 0
        with self.autocast():
            state = self.predictor.init_state(str(folder))
            self.predictor.add_new_points_or_box(state, 0, 1, box=np.array(square_box(0, width, height), np.float32))
            self.predictor.add_new_points_or_box(state, 0, 2, points=np.array([disc_centre(0, width, height)], np.float32),
                                                 labels=np.array([1], np.int32))
            for index, _, _ in self.predictor.propagate_in_video(state):
                frames += 1
                on_frame(index)
        return frames


def main(argv: list[str]) -> int:
    from PIL import Image

    config, checkpoint, device, folder, small, large, *overrides = argv
    tracker = UpstreamTracker(config, Path(checkpoint), device, overrides)
    width, height = Image.open(Path(folder) / "0.jpg").size
    wanted, rss = {int(small) - 1, int(large) - 1}, {}

    def on_frame(index: int) -> None:
        if index in wanted:
            rss[index + 1] = rss_bytes(os.getpid())

    tracker.track(Path(folder), width, height, on_frame)
    print(json.dumps({"rss_after_frames": rss}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
