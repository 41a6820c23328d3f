"""The video section's generated clip keeps both objects whole inside the frame however long it runs
(its memory rows track 300 frames), and each frame draws them where the prompts say."""

from __future__ import annotations

from labelgate.bench.clips import disc_centre, frame, square_box, write_clip

WIDTH, HEIGHT = 96, 64


def test_objects_stay_inside_the_frame_on_a_long_clip():
    radius = min(WIDTH, HEIGHT) // 8
    for t in range(400):
        x0, y0, x1, y1 = square_box(t, WIDTH, HEIGHT)
        assert 0 <= x0 < x1 < WIDTH and 0 <= y0 < y1 < HEIGHT, t
        cx, cy = disc_centre(t, WIDTH, HEIGHT)
        assert radius <= cx <= WIDTH - radius and radius <= cy <= HEIGHT - radius, t
    assert len({square_box(t, WIDTH, HEIGHT) for t in range(400)}) > 20  # they move


def test_frames_draw_the_objects_where_the_prompts_point(tmp_path):
    for t in (0, 37, 299):
        pixels = frame(t, WIDTH, HEIGHT)
        x0, y0, x1, y1 = (int(v) for v in square_box(t, WIDTH, HEIGHT))
        assert (pixels[y0:y1, x0:x1] == (220, 40, 40)).all()
        cx, cy = (int(v) for v in disc_centre(t, WIDTH, HEIGHT))
        assert tuple(pixels[cy, cx]) == (40, 200, 60)
    paths = write_clip(tmp_path / "clip", 3, WIDTH, HEIGHT)
    assert [p.name for p in paths] == ["0.jpg", "1.jpg", "2.jpg"]  # the names sam2's init_state sorts
