package hl7_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/mllpd/mllpd/hl7"
)

func Example() {
	raw := []byte("MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131123045+0100||ORU^R01^ORU_R01|CTL0001|P|2.5.1\r" +
		"PID|1||12345^^^RXH^MR~987^^^NHS^NH||DOE^JOHN^Q\r" +
		"OBX|1|TX|NOTE^Note||A\\F\\B\r")
	m, err := hl7.Parse(raw)
	if err != nil {
		fmt.Println("parse:", err)
		return
	}
	if err := m.ValidateHeader(); err != nil {
		fmt.Println("header:", err)
		return
	}
	nhs := hl7.MustParsePath("PID-3[2].1") // parse paths once, at config load
	note := hl7.MustParsePath("OBX-5")
	fmt.Printf("%s %s\n", m.GetRaw(nhs), m.Header().ControlID)
	fmt.Printf("raw %s decoded %s\n", m.GetRaw(note), m.Get(note))

	ack := hl7.NewACK(m, hl7.AA, hl7.AckOptions{
		Now:       time.Date(2024, 1, 31, 12, 30, 46, 0, time.UTC),
		ControlID: "ACK1",
	})
	fmt.Printf("%q\n", ack)
	// Output:
	// 987 CTL0001
	// raw A\F\B decoded A|B
	// "MSH|^~\\&|MLLPD|HUB|LAB|RXH|20240131123046+0000||ACK^R01^ACK|ACK1|P|2.5.1\rMSA|AA|CTL0001\r"
}

func ExampleNewNAK() {
	// No MSH at all: the NAK is built from the listener's defaults (reference §6).
	raw := []byte("PID|1||123\r")
	if _, err := hl7.Parse(raw); errors.Is(err, hl7.ErrNoMSH) {
		fmt.Println(err)
	}
	nak := hl7.NewNAK(raw, hl7.AE, hl7.AckOptions{
		Now: time.Date(2024, 1, 31, 12, 30, 46, 0, time.UTC), ControlID: "N1",
		App: "MLLPD", Facility: "HUB", DefaultVersion: "2.5.1",
		Text: "No MSH segment", Error: &hl7.AckError{Code: hl7.ErrCodeSegmentSequence},
	})
	fmt.Printf("%q\n", nak)
	// Output:
	// hl7: first segment is not MSH at PID (segment 1, byte 0)
	// "MSH|^~\\&|MLLPD|HUB|||20240131123046+0000||ACK|N1|P|2.5.1\rMSA|AE||No MSH segment\rERR|||100^Segment sequence error^HL70357|E\r"
}

func ExampleMessage_Set() {
	m, _ := hl7.Parse([]byte("MSH|^~\\&|LAB|RXH|EPR|HUB|2024||ADT^A08|C1|P|2.3\nPID|1||123||DOE^JOHN\nZPI|1|VIP\n"))
	_ = m.Set(hl7.MustParsePath("PID-5.1"), "O'NEIL^SMITH") // escaped: the ^ is data
	_ = m.Delete(hl7.MustParsePath("ZPI"))
	fmt.Printf("%q\n", m.Encode()) // only the edited PID is rewritten (with CR)
	// Output:
	// "MSH|^~\\&|LAB|RXH|EPR|HUB|2024||ADT^A08|C1|P|2.3\nPID|1||123||O'NEIL\\S\\SMITH^JOHN\r"
}
