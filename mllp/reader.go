package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Framing bytes of MLLP release 1.
const (
	startBlock     = 0x0B // VT
	endBlock       = 0x1C // FS
	carriageReturn = 0x0D
)

// DefaultMaxFrameBytes is the frame size limit used when none is configured.
const DefaultMaxFrameBytes = 4 << 20

// PrefixBytes is how much of an oversized or restarted frame is kept: enough
// for the rejected log and to salvage MSH-10 for the NAK.
const PrefixBytes = 64 << 10

// readBufferSize is the size of the bufio.Reader NewReader adds. Typical ADTs
// (1–5 KB) arrive whole in one buffer and are returned without a copy.
const readBufferSize = 16 << 10

// shrinkAbove is the capacity above which the frame buffer is dropped after
// use, so that one large message does not pin its memory for a connection's
// lifetime.
const shrinkAbove = 1 << 20

// ErrFrameTooLarge is matched (errors.Is) by every *FrameTooLargeError.
var ErrFrameTooLarge = errors.New("mllp: frame exceeds size limit")

// ErrFrameRestarted is matched (errors.Is) by every *FrameRestartedError.
var ErrFrameRestarted = errors.New("mllp: start block inside a frame")

// A FrameTooLargeError reports a frame longer than the Reader's limit. The
// Reader has skipped the whole frame, up to and including its end block, so
// the stream is positioned at the next frame and remains usable.
type FrameTooLargeError struct {
	Size   int64  // total payload size of the frame
	Limit  int    // the Reader's limit
	Prefix []byte // the first min(Size, PrefixBytes) payload bytes; valid until the next ReadFrame
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("mllp: frame of %d bytes exceeds limit of %d bytes", e.Size, e.Limit)
}

// Is reports whether target is ErrFrameTooLarge.
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }

// A FrameRestartedError reports a start block (VT) inside a frame: a sender
// aborted a message and began again, typically a resend after a truncation.
// The partial frame is discarded and the Reader continues with the frame the
// new start block opens; the next ReadFrame returns it.
type FrameRestartedError struct {
	Size     int64  // bytes of the discarded partial payload
	Fragment []byte // its first min(Size, PrefixBytes) bytes; valid until the next ReadFrame
}

func (e *FrameRestartedError) Error() string {
	return fmt.Sprintf("mllp: start block inside a frame; %d bytes of partial frame discarded", e.Size)
}

// Is reports whether target is ErrFrameRestarted.
func (e *FrameRestartedError) Is(target error) bool { return target == ErrFrameRestarted }

// A Reader reads MLLP frames from a byte stream.
//
// It is a streaming state machine over a bufio.Reader: several frames in one
// TCP read and one frame over many reads are both handled, and it tolerates
// what real senders do (hl7-mllp-reference §1.3):
//   - bytes outside a frame (CR, LF, NUL, telnet keep-alives) are skipped and
//     counted in Skipped;
//   - FS without the CR that should follow ends the frame; a CR that does
//     follow, even in a later read, is consumed without counting as junk;
//   - a second VT inside a frame discards the partial frame
//     (*FrameRestartedError) and starts a new one;
//   - a frame over the limit is skipped to its FS with bounded memory
//     (*FrameTooLargeError).
//
// A Reader is not safe for concurrent use.
type Reader struct {
	br  *bufio.Reader
	max int

	buf       []byte // payload of the current frame when it is not contiguous in br
	size      int64  // payload bytes seen in the current frame
	oversize  bool   // size passed max: buf holds only the prefix
	inFrame   bool   // a VT has been consumed and its FS not yet
	crPending bool   // the last byte consumed was an FS; a CR next belongs to it
	skipped   int64

	// onStart, if set, is called once a frame's VT was consumed and more of
	// the frame has to be read from the connection (the Server moves from its
	// idle to its read deadline there). A frame already buffered whole, the
	// common case, needs no read and so no deadline of its own.
	onStart      func()
	startPending bool // a VT opened a frame; onStart is due before the next read
}

// NewReader returns a Reader that reads frames from r and refuses payloads
// longer than maxFrame bytes (maxFrame <= 0 means DefaultMaxFrameBytes).
// If r is a *bufio.Reader it is used directly; otherwise one is added.
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameBytes
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	return &Reader{br: br, max: maxFrame}
}

// Skipped returns the number of bytes found outside frames so far, cumulative.
func (r *Reader) Skipped() int64 { return r.skipped }

// ReadFrame returns the next frame's payload, without VT, FS and CR.
//
// The slice is valid only until the next call and must not be modified;
// bytes.Clone it to keep it. The same holds for the Prefix and Fragment of the
// errors below.
//
// Errors:
//   - io.EOF: the stream ended between frames (a clean close);
//   - io.ErrUnexpectedEOF: the stream ended inside a frame; the partial
//     payload is discarded;
//   - *FrameTooLargeError: the frame was skipped; the next call reads the
//     frame after it;
//   - *FrameRestartedError: a VT inside a frame; the next call returns the
//     frame it opened;
//   - any other error comes from the underlying reader, unwrapped (so
//     errors.Is(err, os.ErrDeadlineExceeded) works). After a timeout the
//     Reader's state is intact and ReadFrame may be called again.
func (r *Reader) ReadFrame() ([]byte, error) {
	if !r.inFrame {
		if err := r.skipToStart(); err != nil {
			return nil, err
		}
	}
	return r.readBody()
}

// buffered returns the bytes buffered in br, reading once if there are none.
func (r *Reader) buffered() ([]byte, error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return nil, err
		}
	}
	b, err := r.br.Peek(r.br.Buffered())
	if err != nil {
		// Peek within Buffered cannot fail; be defensive rather than panic.
		return nil, err
	}
	return b, nil
}

// skipToStart discards bytes up to and including the next VT.
func (r *Reader) skipToStart() error {
	for {
		b, err := r.buffered()
		if err != nil {
			return err // io.EOF here is a clean end between frames
		}
		start := 0
		if r.crPending {
			r.crPending = false
			if b[0] == carriageReturn {
				start = 1
			}
		}
		if i := bytes.IndexByte(b[start:], startBlock); i >= 0 {
			r.skipped += int64(i)
			r.discard(start + i + 1)
			r.beginFrame()
			return nil
		}
		r.skipped += int64(len(b) - start)
		r.discard(len(b))
	}
}

// beginFrame resets the frame state after a VT was consumed.
func (r *Reader) beginFrame() {
	r.inFrame = true
	r.size = 0
	r.oversize = false
	if cap(r.buf) > shrinkAbove {
		r.buf = nil
	}
	r.buf = r.buf[:0]
	r.startPending = r.onStart != nil
}

func (r *Reader) readBody() ([]byte, error) {
	for {
		if r.startPending && r.br.Buffered() == 0 {
			r.startPending = false
			r.onStart()
		}
		b, err := r.buffered()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		seg := b
		end := bytes.IndexByte(b, endBlock)
		if end >= 0 {
			seg = b[:end]
		}
		if v := bytes.IndexByte(seg, startBlock); v >= 0 {
			r.appendBody(seg[:v])
			r.discard(v + 1)
			e := &FrameRestartedError{Size: r.size, Fragment: r.buf}
			r.beginFrame() // keeps r.buf's bytes: they are overwritten only by the next call
			return nil, e
		}
		if end < 0 {
			r.appendBody(b)
			r.discard(len(b))
			continue
		}
		// The frame ends in this buffer.
		var payload []byte
		if r.size == 0 && end <= r.max {
			// Fast path: the whole payload is contiguous in br; no copy.
			// Discard does not refill br, so the slice stays valid
			// until the next call.
			payload = b[:end]
			r.size = int64(end)
		} else {
			r.appendBody(seg)
			payload = r.buf
		}
		r.discard(end + 1)
		r.inFrame, r.startPending = false, false
		r.consumeCR()
		if r.oversize {
			return nil, &FrameTooLargeError{Size: r.size, Limit: r.max, Prefix: r.buf}
		}
		return payload, nil
	}
}

// appendBody adds p to the current frame, keeping only the prefix once the
// frame is over the limit.
func (r *Reader) appendBody(p []byte) {
	r.size += int64(len(p))
	if !r.oversize && r.size > int64(r.max) {
		r.oversize = true
		if len(r.buf) > PrefixBytes {
			r.buf = r.buf[:PrefixBytes]
		}
	}
	if r.oversize {
		if room := PrefixBytes - len(r.buf); room > 0 {
			r.grow(min(room, len(p)), PrefixBytes)
			r.buf = append(r.buf, p[:min(room, len(p))]...)
		}
		return
	}
	r.grow(len(p), r.max)
	r.buf = append(r.buf, p...)
}

// grow makes room for n more bytes in buf, doubling but never beyond limit
// (append's own growth would overshoot the frame limit on large frames).
func (r *Reader) grow(n, limit int) {
	need := len(r.buf) + n
	if need <= cap(r.buf) {
		return
	}
	c := min(max(2*cap(r.buf), need, 4<<10), max(limit, need))
	nb := make([]byte, len(r.buf), c)
	copy(nb, r.buf)
	r.buf = nb
}

// consumeCR consumes the CR after an FS if it is already buffered, and
// otherwise remembers to consume it before the next frame: blocking for it
// would deadlock a sender that omits it and waits for its ACK.
func (r *Reader) consumeCR() {
	if r.br.Buffered() == 0 {
		r.crPending = true
		return
	}
	if b, _ := r.br.Peek(1); len(b) == 1 && b[0] == carriageReturn {
		r.discard(1)
	}
}

func (r *Reader) discard(n int) {
	// Discarding buffered bytes cannot fail.
	_, _ = r.br.Discard(n)
}

// ErrInvalidPayload is returned by Writer.WriteFrame for a payload that holds a
// VT or FS byte, which MLLP cannot carry (release 1 has no escaping).
var ErrInvalidPayload = errors.New("mllp: payload contains a framing byte (VT or FS)")

// A Writer writes MLLP frames.
//
// Each frame is written with a single Write call, so a frame is never
// interleaved and small replies leave in one TCP segment. A Writer is not
// safe for concurrent use.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer that frames payloads onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteFrame writes VT, p, FS, CR in one Write. It returns ErrInvalidPayload
// (and writes nothing) if p contains VT or FS.
func (w *Writer) WriteFrame(p []byte) error {
	if bytes.IndexByte(p, startBlock) >= 0 || bytes.IndexByte(p, endBlock) >= 0 {
		return ErrInvalidPayload
	}
	buf := append(w.buf[:0], startBlock)
	buf = append(buf, p...)
	buf = append(buf, endBlock, carriageReturn)
	if cap(buf) <= shrinkAbove {
		w.buf = buf
	} else {
		w.buf = nil
	}
	_, err := w.w.Write(buf)
	return err
}
