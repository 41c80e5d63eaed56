"""The window's keyboard: pygame key events become the HID events the seat keyboard sends."""

from __future__ import annotations

import pygame

from firmware_sim.lab.window import KEYMAP, KeyTracker
from kvm_protocol.keys import KEY_NAMES, KeyEvent, Mod, chord_events, sequence_events


def feed(tracker: KeyTracker, steps: list[tuple[int, bool]]) -> list[KeyEvent | None]:
    return [tracker.event(key, pressed) for key, pressed in steps]


def test_shift_o_twice_is_the_call_up_chord() -> None:
    t = KeyTracker()
    one = [
        (pygame.K_LSHIFT, True),
        (pygame.K_o, True),
        (pygame.K_o, False),
        (pygame.K_LSHIFT, False),
    ]
    assert feed(t, one + one) == sequence_events("Shift+O Shift+O")


def test_right_shift_and_function_keys() -> None:
    t = KeyTracker()
    got = feed(
        t, [(pygame.K_F7, True), (pygame.K_2, True), (pygame.K_2, False), (pygame.K_F7, False)]
    )
    assert got == chord_events("F7+2")
    got = feed(t, [(pygame.K_RSHIFT, True), (pygame.K_a, True)])
    assert [e.mods for e in got if e is not None] == [Mod.RSHIFT, Mod.RSHIFT]


def test_every_lab_key_name_has_a_pygame_key() -> None:
    names = [
        "Enter",
        "Esc",
        "Tab",
        "Backspace",
        "Left",
        "Right",
        "Up",
        "Down",
        "PageUp",
        "PageDown",
        "Comma",
        "Space",
        *"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        *(f"F{i}" for i in range(1, 13)),
    ]
    assert {KEY_NAMES[n] for n in names} <= set(KEYMAP.values())


def test_unknown_keys_stray_releases_and_focus_loss() -> None:
    t = KeyTracker()
    assert t.event(pygame.K_CAPSLOCK, True) is None
    assert t.event(pygame.K_a, False) is None  # pressed before the window had focus
    feed(t, [(pygame.K_LCTRL, True), (pygame.K_c, True)])
    released = t.release_all()
    assert [(e.name, e.pressed) for e in released] == [("C", False), ("Ctrl", False)]
    assert released[-1].mods == Mod.NONE and t.held == set()


def test_auto_repeat_repeats_the_press() -> None:
    t = KeyTracker()
    first = t.event(pygame.K_a, True)
    again = t.event(pygame.K_a, True)
    assert first == again and first is not None and first.pressed
