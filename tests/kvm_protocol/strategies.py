"""Hypothesis strategies for every serial message (shared by the codec and session tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from kvm_protocol import messages as m

u8 = st.integers(0, 255)
head = st.integers(1, m.MAX_HEADS)


def ascii_text(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=[chr(c) for c in range(0x20, 0x7F)], min_size=lo, max_size=hi)


# A Tx reference is either "nothing" ("", head 0) or a 4-digit ID with a head 1..4.
tx_ref = st.one_of(
    st.just(("", 0)),
    st.tuples(st.from_regex(r"\A[0-9]{4}\Z"), head),
)

STRATEGIES: dict[type[m.Message], st.SearchStrategy[m.Message]] = {
    m.Ack: st.builds(m.Ack, u8),
    m.HelloRequest: st.builds(m.HelloRequest, u8),
    m.Hello: st.builds(
        m.Hello,
        u8,
        st.sampled_from(m.DeviceKind),
        ascii_text(1, 32),
        head,
        ascii_text(0, 32),
    ),
    m.Heartbeat: st.builds(m.Heartbeat, st.integers(0, 2**32 - 1)),
    m.Error: st.builds(m.Error, st.sampled_from(m.ErrorCode), u8, ascii_text(0, 64)),
    m.KeyInput: st.builds(m.KeyInput, u8, u8, st.booleans()),
    m.KeyForward: st.builds(m.KeyForward, u8, u8, st.booleans()),
    m.ScreenSelect: st.builds(m.ScreenSelect, st.booleans(), st.integers(1, 8)),
    m.SwitchHead: st.builds(lambda h, ref: m.SwitchHead(h, *ref), head, tx_ref),
    m.SwitchResult: st.builds(m.SwitchResult, u8, head, st.sampled_from(m.SwitchStatus)),
    m.HeadStatus: st.builds(
        lambda h, ref, video: m.HeadStatus(h, ref[0], ref[1], video), head, tx_ref, st.booleans()
    ),
    m.StatusRequest: st.just(m.StatusRequest()),
    m.NetworkStatus: st.builds(m.NetworkStatus, st.booleans()),
    m.VideoStatus: st.builds(m.VideoStatus, head, st.booleans()),
    m.OsdOverlay: st.builds(m.OsdOverlay, st.booleans()),
}

any_message: st.SearchStrategy[m.Message] = st.one_of(*STRATEGIES.values())
frame_items = st.tuples(any_message, u8)  # (message, seq)
