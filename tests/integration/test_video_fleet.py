"""Video tracking over a fleet: an AffinityClient keeps a session on one replica, and a session lost
under it (closed, or its replica gone) is reopened, its prompts replayed, and the frames go on
where they stopped, equal to an uninterrupted run's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from labelgate.client import AffinityClient, Client, encode_image, rank_endpoints
from labelgate.client.tracking import ObjectPrompt
from labelgate.client.video_session import SessionLog, expected_frames, video_key
from labelgate.v1 import labelgate_pb2 as pb
from server_process import start_server
from video_clip import disc_centre, moving_shapes, square_box, video_bytes

NUM_FRAMES = 6
PROMPTS = [ObjectPrompt(1, box=square_box(0)), ObjectPrompt(2, points=[disc_centre(0)])]


@pytest.fixture(scope="module")
def replicas(demo_weights, tmp_path_factory):
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(start_server, tmp_path_factory.mktemp(f"replica-{name}"), demo_weights, "--gdino-model", "")
                   for name in "ab"]
        a, b = (future.result() for future in started)
    yield {a.address: a, b.address: b}
    for replica in (a, b):
        assert replica.stop() == 0, replica.log()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return video_bytes(moving_shapes(NUM_FRAMES))


@pytest.fixture(scope="module")
def uninterrupted(replicas, clip):
    with Client(next(iter(replicas))) as client:
        return list(client.track(clip, PROMPTS))


def opened_videos(replica) -> float:
    return replica.metric("labelgate_requests_total", method="OpenVideo", code="OK")


def same_frames(got, expected) -> bool:
    def content(frames):
        return [(f.frame_index, f.timestamp, [(i, m.rle["counts"], m.score) for i, m in sorted(f.masks.items())])
                for f in frames]

    return content(got) == content(expected)


def test_every_call_of_a_session_goes_to_the_replica_its_video_hashes_to(replicas):
    # Two clips that rank different replicas first, so a client that ignored the hash fails one of them.
    clips = {}
    for frames in range(2, 12):
        data = video_bytes(moving_shapes(frames))
        with AffinityClient(list(replicas)) as client:
            clips.setdefault(client.endpoint_for_video(data), data)
        if len(clips) == 2:
            break
    assert len(clips) == 2
    for holder, data in clips.items():
        other = next(address for address in replicas if address != holder)
        before = {address: opened_videos(replica) for address, replica in replicas.items()}
        calls_before = replicas[other].metric("labelgate_requests_total", method="Propagate", code="OK")
        with AffinityClient(list(replicas)) as client:
            tracked = list(client.track(data, PROMPTS, max_frames=2))
        assert [frame.frame_index for frame in tracked] == [0, 1]
        assert opened_videos(replicas[holder]) == before[holder] + 1
        assert opened_videos(replicas[other]) == before[other]
        assert replicas[other].metric("labelgate_requests_total", method="Propagate", code="OK") == calls_before


def test_a_session_closed_before_propagating_is_reopened_on_its_replica_with_its_prompts(replicas, clip, uninterrupted):
    with AffinityClient(list(replicas)) as client, client.open_video(clip) as session:
        holder = session.client.target
        session.add_prompts(PROMPTS)
        replicas[holder].stub().CloseVideo(pb.CloseVideoRequest(session_id=session.session_id))  # as an idle TTL would
        lost = session.session_id
        tracked = list(session.propagate())
        assert session.reopens == 1 and session.session_id != lost
        assert session.client.target == holder
    assert same_frames(tracked, uninterrupted)


def test_a_session_closed_mid_stream_resumes_after_the_last_frame_yielded(replicas, clip, uninterrupted):
    with Client(next(iter(replicas))) as client, client.open_video(clip) as session:
        session.add_prompts(PROMPTS)
        frames = session.propagate()
        tracked = [next(frames), next(frames)]
        client._stub.CloseVideo(pb.CloseVideoRequest(session_id=session.session_id))
        tracked += list(frames)  # the frames already on their way, then the rest from a reopened session
    assert same_frames(tracked, uninterrupted)


async def test_the_async_session_is_reopened_too(replicas, clip, uninterrupted):
    from labelgate.client import AsyncClient

    address = next(iter(replicas))
    async with AsyncClient(address) as client:
        session = await client.open_video(clip)
        async with session:
            await session.add_prompts(PROMPTS)
            replicas[address].stub().CloseVideo(pb.CloseVideoRequest(session_id=session.session_id))
            tracked = [frame async for frame in session.propagate()]
            assert session.reopens == 1
    assert same_frames(tracked, uninterrupted)


async def test_the_async_fleet_client_keeps_a_clip_and_an_image_on_their_replicas(replicas, clip, uninterrupted):
    from labelgate.client import AsyncAffinityClient, ImageId

    async with AsyncAffinityClient(list(replicas)) as client:
        holder = client.endpoint_for_video(clip)
        before = {address: opened_videos(replica) for address, replica in replicas.items()}
        tracked = [frame async for frame in client.track(clip, PROMPTS)]
        assert same_frames(tracked, uninterrupted)
        assert {address: opened_videos(r) - before[address] for address, r in replicas.items()} == {
            address: int(address == holder) for address in replicas}

        session = await client.open_video(clip)
        async with session:
            assert session.client.target == holder
            await session.add_prompts(PROMPTS)
            replicas[holder].stub().CloseVideo(pb.CloseVideoRequest(session_id=session.session_id))
            assert same_frames([frame async for frame in session.propagate()], uninterrupted)
            assert session.reopens == 1 and session.client.target == holder

        # The replicas share no cache: a click by id is a hit only on the replica that embedded the image.
        images = {}
        for size in range(40, 80):
            data = encode_image(moving_shapes(1, size, size)[0])
            images.setdefault(client.endpoint_for(data), data)
        assert len(images) == 2  # one image ranked first by each replica
        for data in images.values():
            embedded = await client.embed(data)
            clicked = await client.segment(ImageId(embedded.image_id), points=[(5, 5)])
            assert clicked.cache_hit and clicked.image_id == embedded.image_id


def test_a_replica_gone_mid_session_hands_it_to_the_video_s_next_replica(replicas, demo_weights, tmp_path):
    doomed = start_server(tmp_path, demo_weights, "--gdino-model", "")
    try:
        # A clip and a survivor such that the clip ranks the doomed replica first.
        survivor, data = next((survivor, video_bytes(moving_shapes(frames))) for frames in range(NUM_FRAMES, 20)
                              for survivor in replicas
                              if rank_endpoints(video_key(pb.OpenVideoRequest(video=video_bytes(moving_shapes(frames)))),
                                                [doomed.address, survivor])[0] == doomed.address)
        with Client(survivor) as client:
            uninterrupted = list(client.track(data, PROMPTS))
        with AffinityClient([doomed.address, survivor]) as client, client.open_video(data) as session:
            assert session.client.target == doomed.address
            session.add_prompts(PROMPTS)
            assert doomed.stop() == 0
            tracked = list(session.propagate())
            assert session.reopens == 1 and session.client.target == survivor
    finally:
        doomed.stop()
    assert same_frames(tracked, uninterrupted)


def test_the_session_log_starts_a_resumed_propagate_where_the_first_began():
    log = SessionLog(pb.OpenVideoRequest(video=b"clip"))
    for frame in (4, 2):
        log.record_prompts(pb.AddPromptsRequest(frame_index=frame, objects=[pb.ObjectPrompt(object_id=frame)]))
    assert log.start_frame(None) == 2 and log.object_ids == [4, 2]
    log.changed_frames.clear()  # propagated
    log.record_prompts(pb.AddPromptsRequest(frame_index=3, objects=[pb.ObjectPrompt(object_id=4)]))
    assert log.start_frame(None) == 3 and log.start_frame(0) == 0
    assert expected_frames(3, "both", 2, 10) == [3, 4, 2]
    assert expected_frames(1, "backward", 0, 10) == [1, 0]
    with pytest.raises(ValueError, match="unknown object ids"):
        log.check_objects([5])


def test_a_stream_session_stays_on_the_replica_its_first_frames_hash_to(replicas):
    images = [encode_image(frame) for frame in moving_shapes(4)]
    holder = rank_endpoints(video_key(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=[pb.Image(data=images[0])]))),
                            list(replicas))[0]
    other = next(address for address in replicas if address != holder)

    def appended(address: str) -> float:
        return replicas[address].metric("labelgate_requests_total", method="AppendFrames", code="OK")

    before = {address: appended(address) for address in replicas}
    with AffinityClient([other, holder]) as client, client.open_video(images[:1], stream=True) as session:  # order is no rank
        assert session.client.target == holder
        session.add_prompts(PROMPTS)
        tracked = list(session.propagate())
        for index in range(1, len(images)):
            if index == 2:
                replicas[holder].stub().CloseVideo(pb.CloseVideoRequest(session_id=session.session_id))
            session.append_frames([images[index]])
            tracked += list(session.propagate(start_frame=index, max_frames=1))
        assert session.reopens == 1 and session.client.target == holder
    assert [frame.frame_index for frame in tracked] == [0, 1, 2, 3]
    assert appended(holder) == before[holder] + 3 and appended(other) == before[other]
