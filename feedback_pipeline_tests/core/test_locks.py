import threading
import time

from feedback_pipeline.core.locks import exclusive_lock


def test_a_second_holder_waits_until_the_first_lets_go(tmp_path):
    lock = tmp_path / "nested" / "state.lock"
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with exclusive_lock(lock):
            order.append("first in")
            held.set()
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    with exclusive_lock(lock):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert lock.exists()


def test_a_path_that_is_not_local_takes_no_lock():
    with exclusive_lock("memory://bucket/state.lock"):
        pass
