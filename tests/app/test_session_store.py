"""The server's per-session record that lets a reload keep the session's dataset and settings."""

from tltools import app_state
from tltools.app_state import SessionStore, valid_token
from tltools.training import TrainConfig


def test_a_restored_session_gets_copies_of_what_was_saved_and_nothing_else():
    store = SessionStore()
    config = TrainConfig(epochs=7)
    store.save("a" * 32, {app_state.CONFIG: config, app_state.JOB_ID: "j1", "some_widget": 3})
    restored = store.restore("a" * 32)
    assert restored == {app_state.CONFIG: config, app_state.JOB_ID: "j1"}  # only the persisted keys
    assert restored[app_state.CONFIG] is not config  # two tabs never share one mutable object
    assert store.restore("b" * 32) is None


def test_the_store_keeps_the_most_recent_sessions_and_forgets_idle_ones():
    now = [0.0]
    store = SessionStore(max_sessions=2, max_idle_s=100, clock=lambda: now[0])
    for token in ("a", "b", "c"):
        store.save(token * 32, {app_state.JOB_ID: token})
    assert store.restore("a" * 32) is None and store.restore("c" * 32) == {app_state.JOB_ID: "c"}
    now[0] = 150.0
    assert store.restore("c" * 32) is None  # idle too long: its dataset's lease is let go on the next save
    store.save("d" * 32, {})
    assert list(store._records) == ["d" * 32]


def test_only_tokens_the_app_makes_are_accepted_from_a_url():
    assert valid_token("0123456789abcdef" * 2)
    for bad in ("", "x" * 32, "0123456789abcdef", "../" * 11, None, 5):
        assert not valid_token(bad)
