package hl7

import (
	"errors"
	"strconv"
	"time"
)

// BatchKind tells how a frame carried its messages.
type BatchKind int

// Frame shapes (reference §7).
const (
	SingleMessage BatchKind = iota // one MSH message
	Headerless                     // several MSH messages, no FHS/BHS
	BatchBHS                       // BHS ... BTS
	BatchFHS                       // FHS [BHS ... BTS]... FTS
)

// String returns a snake_case name, usable as a metric label.
func (k BatchKind) String() string {
	switch k {
	case SingleMessage:
		return "single"
	case Headerless:
		return "headerless"
	case BatchBHS:
		return "bhs"
	case BatchFHS:
		return "fhs"
	}
	return "unknown"
}

// BatchHeader holds the fields of a BHS or FHS that a reply batch needs, raw
// as on the wire.
type BatchHeader struct {
	SendingApp, SendingFacility, ReceivingApp, ReceivingFacility string // BHS-3..6 / FHS-3..6
	ControlID                                                    string // BHS-11 / FHS-11
}

// A Batch is a frame split into its messages.
type Batch struct {
	Kind     BatchKind
	Messages []*Message // in order; each parsed from a sub-slice of the frame (no copy)

	// Delimiters of the envelope (of the first MSH for SingleMessage and
	// Headerless): the reply batch uses them.
	Delimiters Delimiters
	// File is the FHS (Kind BatchFHS only); Batch is the first BHS (zero when
	// there is none).
	File, Batch BatchHeader
	// HasBHS reports whether a BHS was present.
	HasBHS bool
	// DeclaredCount is the sum of the BTS-1 message counts; -1 when no BTS
	// declares one. CountMismatch is set when any batch's BTS-1 differs from
	// the number of messages it held (or FTS-1 from the number of batches):
	// advisory, log it (reference §7, case 64).
	DeclaredCount int
	CountMismatch bool
	// Repairs of the envelope segments (terminators, BOM); each Message
	// records its own.
	Repairs Repairs

	one [1]*Message // backing array of Messages for a single message: no extra allocation
}

// frameRelative moves the location of a message's ParseError from the
// message to the frame that holds it (the message starts at byte off, after
// segs segments).
func frameRelative(err error, off, segs int) error {
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.Offset += off
		pe.SegIndex += segs
	}
	return err
}

// SplitBatch splits a frame into messages: an FHS/BHS batch, a headerless run
// of MSH messages, or a single message (Kind SingleMessage, equal to Parse).
// Each message is parsed with o; its Raw() is a sub-slice of raw. Errors: as
// Parse for a frame that starts with neither MSH nor BHS/FHS, or for a
// message inside the batch (its location is then given within the frame);
// *BatchError for a broken envelope: a BHS or FHS without any MSH,
// a second FHS, a BHS inside an open batch, a segment before the first MSH or
// after FTS, an FHS or BHS after the first MSH of a headerless frame.
func SplitBatch(raw []byte, o Options) (*Batch, error) {
	off, _ := skipLeading(raw)
	body := raw[off:]
	if !hasID(body, "BHS") && !hasID(body, "FHS") {
		m, err := ParseWithOptions(raw, o)
		if err != nil {
			return nil, err
		}
		b := &Batch{Kind: SingleMessage, Delimiters: m.delims, DeclaredCount: -1}
		if !m.hasEnvelopeSegment() {
			b.one[0] = m
			b.Messages = b.one[:]
			return b, nil
		}
		return splitHeaderless(m, o, b)
	}
	d, _, drep, field, ok := parseDelims(body)
	if !ok {
		o := off + 3
		if field == 2 {
			o++
		}
		return nil, &ParseError{Segment: string(body[:3]), SegIndex: 1, Field: field, Offset: o, Err: ErrBadDelimiters}
	}
	// The envelope is read with the Message machinery: same terminator rules.
	env := &Message{raw: raw, delims: d}
	env.segs = env.inline[:0]
	env.split(off)
	b := &Batch{Kind: BatchBHS, Delimiters: d, DeclaredCount: -1, Repairs: env.repairs | drep}
	return splitEnvelope(env, o, b)
}

// hasEnvelopeSegment reports whether a segment after the first is MSH, BHS,
// FHS, BTS or FTS: the frame is more than one message.
func (m *Message) hasEnvelopeSegment() bool {
	for i := 1; i < len(m.segs); i++ {
		b := m.segBytes(i)
		if len(b) < 3 || b[1] != 'H' && b[1] != 'S' && b[1] != 'T' {
			continue
		}
		switch string(segName(b, m.delims.Field)) {
		case "MSH", "BHS", "FHS", "BTS", "FTS":
			return true
		}
	}
	return false
}

// splitHeaderless splits a parsed MSH-first frame at each MSH.
func splitHeaderless(m *Message, o Options, b *Batch) (*Batch, error) {
	b.Kind = Headerless
	start := -1
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		msg, err := ParseWithOptions(m.raw[m.segs[start].start:m.segs[end].term], o)
		if err != nil {
			return frameRelative(err, int(m.segs[start].start), start)
		}
		b.Messages = append(b.Messages, msg)
		return nil
	}
	for i := range m.segs {
		s := m.segBytes(i)
		switch name := string(segName(s, m.delims.Field)); name {
		case "MSH":
			if err := flush(i - 1); err != nil {
				return nil, err
			}
			start = i
		case "BHS", "FHS", "BTS", "FTS":
			return nil, &BatchError{Segment: name, SegIndex: i + 1, Offset: int(m.segs[i].start), Reason: "batch segment after a message"}
		}
	}
	if err := flush(len(m.segs) - 1); err != nil {
		return nil, err
	}
	if len(b.Messages) == 1 {
		b.Kind = SingleMessage
	}
	return b, nil
}

// splitEnvelope walks FHS/BHS/MSH/BTS/FTS segments.
func splitEnvelope(env *Message, o Options, b *Batch) (*Batch, error) {
	f := env.delims.Field
	var (
		fileOpen, fileClosed, batchOpen bool
		msgStart                        = -1
		inBatch, batches, btsSum        int
		btsSeen                         bool
	)
	berr := func(i int, name, why string) error {
		return &BatchError{Segment: name, SegIndex: i + 1, Offset: int(env.segs[i].start), Reason: why}
	}
	closeMsg := func(last int) error {
		if msgStart < 0 {
			return nil
		}
		m, err := ParseWithOptions(env.raw[env.segs[msgStart].start:env.segs[last].term], o)
		if err != nil {
			return frameRelative(err, int(env.segs[msgStart].start), msgStart)
		}
		b.Messages = append(b.Messages, m)
		msgStart = -1
		inBatch++
		return nil
	}
	header := func(s []byte) BatchHeader {
		fr := func(n int) string { return string(fieldRaw(s, f, n)) }
		return BatchHeader{SendingApp: fr(3), SendingFacility: fr(4), ReceivingApp: fr(5), ReceivingFacility: fr(6), ControlID: fr(11)}
	}
	count := func(s []byte) (int, bool) {
		v := comp1(nth(s, f, 2), env.delims)
		n, err := strconv.Atoi(string(v))
		return n, err == nil && n >= 0
	}
	for i := range env.segs {
		s := env.segBytes(i)
		name := string(segName(s, f))
		if fileClosed {
			return nil, berr(i, segmentID(s), "segment after FTS")
		}
		switch name {
		case "FHS":
			if i != 0 {
				return nil, berr(i, name, "FHS not first")
			}
			fileOpen = true
			b.Kind = BatchFHS
			b.File = header(s)
		case "BHS":
			if batchOpen {
				return nil, berr(i, name, "BHS inside an open batch")
			}
			if err := closeMsg(i - 1); err != nil {
				return nil, err
			}
			if !b.HasBHS {
				b.Batch = header(s)
			}
			b.HasBHS, batchOpen, inBatch = true, true, 0
			batches++
		case "MSH":
			if err := closeMsg(i - 1); err != nil {
				return nil, err
			}
			msgStart = i
		case "BTS":
			if err := closeMsg(i - 1); err != nil {
				return nil, err
			}
			if n, ok := count(s); ok {
				btsSeen = true
				btsSum += n
				if n != inBatch {
					b.CountMismatch = true
				}
			}
			batchOpen = false
		case "FTS":
			if !fileOpen {
				return nil, berr(i, name, "FTS without FHS")
			}
			if err := closeMsg(i - 1); err != nil {
				return nil, err
			}
			if n, ok := count(s); ok && b.HasBHS && n != batches {
				b.CountMismatch = true
			}
			fileClosed = true
		default:
			if msgStart < 0 {
				return nil, berr(i, segmentID(s), "segment outside a message")
			}
		}
	}
	if err := closeMsg(len(env.segs) - 1); err != nil {
		return nil, err
	}
	if len(b.Messages) == 0 {
		return nil, berr(0, segmentID(env.segBytes(0)), "batch without messages")
	}
	if btsSeen {
		b.DeclaredCount = btsSum
	}
	return b, nil
}

// NewBatchACK builds the reply to a batch frame from one acknowledgment per
// message (reference §7): BHS, the ACKs, BTS with their count; for an FHS
// input FHS and FTS around it. The envelope uses the inbound delimiters;
// BHS-3/4 and FHS-3/4 are the inbound -5/6 (or o.App/o.Facility), -5/6 the
// inbound -3/4; BHS-7 = o.Now; BHS-11 = o.ControlID (with FHS input FHS-11 = o.ControlID
// and BHS-11 = o.ControlID+"-B", so the two envelopes are told apart); BHS-12 = the
// inbound BHS-11, FHS-12 = the inbound FHS-11. For SingleMessage and
// Headerless frames the reply is one ACK: acks[0] is returned as is.
func NewBatchACK(b *Batch, acks [][]byte, o AckOptions) []byte {
	if b == nil || b.Kind == SingleMessage || b.Kind == Headerless {
		if len(acks) == 0 {
			return nil
		}
		return acks[0]
	}
	d := b.Delimiters
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	n := 0
	for _, a := range acks {
		n += len(a) + 1
	}
	out := make([]byte, 0, n+256)
	bh := b.Batch
	if !b.HasBHS {
		// FHS without BHS: the reply's BHS names the same parties and
		// references no inbound batch.
		bh = b.File
		bh.ControlID = ""
	}
	if b.Kind == BatchFHS {
		out = appendEnvelopeHeader(out, "FHS", b.File, d, now, o)
		// The batch inside the file needs its own control ID.
		if o.ControlID != "" {
			o.ControlID += "-B"
		}
	}
	out = appendEnvelopeHeader(out, "BHS", bh, d, now, o)
	for _, a := range acks {
		out = append(out, a...)
		if len(a) > 0 && a[len(a)-1] != '\r' {
			out = append(out, '\r')
		}
	}
	out = append(out, "BTS"...)
	out = append(out, d.Field)
	out = strconv.AppendInt(out, int64(len(acks)), 10)
	out = append(out, '\r')
	if b.Kind == BatchFHS {
		out = append(out, "FTS"...)
		out = append(out, d.Field, '1', '\r')
	}
	return out
}

func appendEnvelopeHeader(b []byte, id string, h BatchHeader, d Delimiters, now time.Time, o AckOptions) []byte {
	b = append(b, id...)
	b = append(b, d.Field)
	b = d.appendEncoding(b)
	b = append(b, d.Field)
	b = appendOr(b, []byte(h.ReceivingApp), o.App, d)
	b = append(b, d.Field)
	b = appendOr(b, []byte(h.ReceivingFacility), o.Facility, d)
	b = append(b, d.Field)
	b = append(b, h.SendingApp...)
	b = append(b, d.Field)
	b = append(b, h.SendingFacility...)
	b = append(b, d.Field)
	b = appendTS(b, now)
	b = append(b, d.Field, d.Field, d.Field, d.Field) // -8 security, -9 name, -10 comment
	b = appendControlID(b, o, now, d)
	if h.ControlID != "" {
		b = append(b, d.Field)
		b = append(b, h.ControlID...)
	}
	return append(b, '\r')
}
