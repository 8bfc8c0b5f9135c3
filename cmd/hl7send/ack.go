package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/mllpd/mllpd/hl7"
)

// ackInfo is what hl7send reports of a reply: MSA-1..3 and the error detail of a NAK.
type ackInfo struct {
	Code       string // MSA-1
	ControlID  string // MSA-2, raw: the MSH-10 it acknowledges
	Text       string // MSA-3
	ErrCode    string // ERR-3.1 (v2.5+), or ERR-1.4.1 (the ELD form before v2.5)
	ErrText    string // ERR-3.2, or ERR-1.4.2
	Diagnostic string // ERR-7
}

// ackPaths are the reply fields read, parsed once per run.
type ackPaths struct {
	msa1, msa2, msa3, err31, err32, err141, err142, err7 hl7.Path
}

func newAckPaths() (*ackPaths, error) {
	var p ackPaths
	for _, f := range []struct {
		dst *hl7.Path
		src string
	}{
		{&p.msa1, "MSA-1"}, {&p.msa2, "MSA-2"}, {&p.msa3, "MSA-3"},
		{&p.err31, "ERR-3.1"}, {&p.err32, "ERR-3.2"}, {&p.err141, "ERR-1.4.1"},
		{&p.err142, "ERR-1.4.2"}, {&p.err7, "ERR-7"},
	} {
		var err error
		if *f.dst, err = hl7.ParsePath(f.src); err != nil {
			return nil, fmt.Errorf("path %s: %w", f.src, err)
		}
	}
	return &p, nil
}

var errNoMSA = errors.New("reply has no MSA segment")

// parse reads a reply. An ack batch (BHS/FHS ... BTS/FTS) counts as one ACK: the one of
// its first message.
func (p *ackPaths) parse(reply []byte) (ackInfo, error) {
	var m *hl7.Message
	body := bytes.TrimLeft(reply, " \r\n\x00")
	if bytes.HasPrefix(body, []byte("BHS")) || bytes.HasPrefix(body, []byte("FHS")) {
		b, err := hl7.SplitBatch(reply, hl7.Options{})
		if err != nil {
			return ackInfo{}, err
		}
		if len(b.Messages) == 0 {
			return ackInfo{}, errors.New("ack batch holds no ACK")
		}
		m = b.Messages[0]
	} else {
		var err error
		if m, err = hl7.Parse(reply); err != nil {
			return ackInfo{}, err
		}
	}
	if m.SegmentCountOf("MSA") == 0 {
		return ackInfo{}, errNoMSA
	}
	a := ackInfo{
		Code:       strings.TrimSpace(m.Get(p.msa1)),
		ControlID:  string(m.GetRaw(p.msa2)),
		Text:       m.Get(p.msa3),
		ErrCode:    m.Get(p.err31),
		ErrText:    m.Get(p.err32),
		Diagnostic: m.Get(p.err7),
	}
	if a.ErrCode == "" {
		a.ErrCode, a.ErrText = m.Get(p.err141), m.Get(p.err142)
	}
	return a, nil
}

// detail is the one-line explanation printed for a NAK.
func (a ackInfo) detail() string {
	var parts []string
	if a.ErrCode != "" || a.ErrText != "" {
		parts = append(parts, strings.TrimSpace("ERR "+a.ErrCode+" "+a.ErrText))
	}
	if a.Text != "" {
		parts = append(parts, fmt.Sprintf("MSA-3 %q", a.Text))
	}
	if a.Diagnostic != "" {
		parts = append(parts, fmt.Sprintf("ERR-7 %q", a.Diagnostic))
	}
	return strings.Join(parts, "; ")
}

// A mismatchError is a reply whose MSA-2 is not the MSH-10 just sent. It is returned from
// mllp.Client.Check, so the client drops the connection (a late reply must never be taken
// for the next message's), and it keeps the reply for the report.
type mismatchError struct {
	sent string
	ack  ackInfo
}

func (e *mismatchError) Error() string {
	return fmt.Sprintf("MSA-2 %q does not acknowledge the MSH-10 sent (%q)", e.ack.ControlID, e.sent)
}
