"""The one atomic-write helper (issue 19 item 1): a regular file is replaced whole or not at all;
``-`` is standard output; a FIFO (or device) is written in place, never renamed over; a symlink
is written through, never replaced."""

from __future__ import annotations

import os
import stat
import sys
import threading

import pytest

from clinepipe.atomic_files import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_fits,
    atomic_write_text,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: more than a pipe buffer holds, so a reader must read


def test_regular_file_replaced_whole_or_left_alone(tmp_path):
    out = tmp_path / "sub" / "f.txt"
    atomic_write_text(out, "first\n")
    os.chmod(out, 0o600)
    with pytest.raises(RuntimeError):
        with atomic_open(out, "w") as fh:
            fh.write("half of the second")
            raise RuntimeError("killed mid-write")
    assert out.read_text() == "first\n"
    atomic_write_bytes(out, [b"sec", b"ond\n"])
    assert out.read_bytes() == b"second\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # the file's mode is kept
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.txt"]  # no temporary left


def test_dash_is_standard_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    atomic_write_text("-", "line 1\nline 2\n")
    atomic_write_bytes("-", [b"bytes\n"])
    assert capsys.readouterr().out == "line 1\nline 2\nbytes\n"
    assert not (tmp_path / "-").exists() and list(tmp_path.iterdir()) == []


def test_fifo_is_written_in_place_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    spare = tmp_path / "pipe-link"
    os.link(fifo, spare)  # a second name of the FIFO, to release the reader if the test fails
    received = []

    def read():
        with open(fifo, "rb") as fh:
            received.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        atomic_write_bytes(fifo, [PAYLOAD[:1000], PAYLOAD[1000:]])
    finally:
        if reader.is_alive() and not received:
            try:  # the writer never opened the FIFO (it was renamed over): unblock the reader
                os.close(os.open(spare, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        reader.join()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received == [PAYLOAD]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "pipe-link"]


def test_dev_stdout_redirected_to_a_file_is_appended_to_never_replaced(tmp_path):
    """``clinepipe … --output /dev/stdout >> log``: the log keeps its lines and its inode."""
    import subprocess

    log = tmp_path / "cron.log"
    log.write_text("earlier run\n")
    inode = log.stat().st_ino
    code = ("from clinepipe.atomic_files import atomic_write_text; "
            "atomic_write_text('/dev/stdout', 'exported\\n')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(log, "a") as fh:
        subprocess.run([sys.executable, "-c", code], stdout=fh, check=True, env=env)
    assert log.read_text() == "earlier run\nexported\n" and log.stat().st_ino == inode


def test_symlink_is_written_through_and_kept(tmp_path):
    target = tmp_path / "data" / "report.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "latest.txt"
    link.symlink_to(os.path.relpath(target, tmp_path))
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == os.path.join("data", "report.txt")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.txt"]
    dangling = tmp_path / "next.txt"
    dangling.symlink_to(tmp_path / "data" / "new.txt")
    atomic_write_text(dangling, "made\n")
    assert dangling.is_symlink() and (tmp_path / "data" / "new.txt").read_text() == "made\n"


def test_fits_through_a_symlink(tmp_path):
    import numpy as np
    from astropy.io import fits

    target = tmp_path / "frame.fits"
    link = tmp_path / "current.fits"
    link.symlink_to(target)
    atomic_write_fits(link, fits.HDUList([fits.PrimaryHDU(np.arange(6.0).reshape(2, 3))]))
    assert link.is_symlink()
    assert fits.getdata(target).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        atomic_write_text(tmp_path, "x")


def test_large_chunks_written_in_pieces_whole_or_not_at_all(tmp_path):
    """Chunks of several pieces (numpy planes of any dtype and shape, handed to the disk as
    they are written) give the same bytes; a failure after them leaves the old file."""
    import numpy as np

    rng = np.random.default_rng(7)
    image = rng.normal(300.0, 20.0, (2111, 2203)).astype(">f4")  # 18.6 MB: three pieces
    mask = rng.integers(0, 4, (4500, 4100), dtype=np.uint8)  # 18.5 MB, 1-byte items
    chunks = [b"HEAD" * 720, memoryview(image), mask, b"\0" * 17]
    out = tmp_path / "big.fits"
    atomic_write_bytes(out, chunks)
    got = out.read_bytes()
    assert got == b"".join([chunks[0], image.tobytes(), mask.tobytes(), chunks[3]])

    def failing():
        yield memoryview(image)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        atomic_write_bytes(out, failing())
    assert out.read_bytes() == got
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.fits"]


def test_large_chunks_through_a_fifo(tmp_path):
    """A FIFO is written in place: no writeback hints, the same bytes in order."""
    payload = bytes(range(256)) * (70_000)  # 17.9 MB
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write_bytes(fifo, [b"x", payload])
    reader.join(timeout=60)
    assert got == [b"x" + payload]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
