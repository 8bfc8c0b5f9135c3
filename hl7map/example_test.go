package hl7map_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/hl7map"
)

func Example() {
	mp, err := hl7map.Compile([]hl7map.Rule{
		{Set: "MSH-5", Value: "EPR"},
		{Copy: "PID-3[1].1", To: "PID-2"},
		{Delete: "ZPI"},
		{Translate: "PV1-3.1", Table: "wards", Default: "keep"},
		{Replace: "PID-5.1", Regex: `^DR\.? *`, With: ""},
	}, map[string]map[string]string{"wards": {"W1": "WARD-ONE"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := hl7.Parse([]byte("MSH|^~\\&|LAB|RXH|MLLPD|HUB|20240131||ADT^A01|C1|P|2.5.1|||AL|NE\r" +
		"PID|1||12345^^^RXH^MR||DR. DOE^JOHN\rPV1|1|I|W1\rZPI|1|VIP\r"))
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := hl7map.Outbound(m, mp, false) // outbound_ack_mode: original
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.ReplaceAll(string(out), "\r", "\n"))
	// Output:
	// MSH|^~\&|LAB|RXH|EPR|HUB|20240131||ADT^A01|C1|P|2.5.1
	// PID|1|12345|12345^^^RXH^MR||DOE^JOHN
	// PV1|1|I|WARD-ONE
}

func ExampleCompile_errors() {
	_, err := hl7map.Compile([]hl7map.Rule{
		{Set: "MSH-5", Value: "EPR"},
		{Translate: "PV1-3.1", Table: "wardz"},
	}, nil)
	var errs hl7map.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			// The config layer prefixes its own path to each rule's index.
			fmt.Printf("routes[0].to[1].map[%d]: %s\n", e.Index, e.Reason())
		}
	}
	// Output:
	// routes[0].to[1].map[1]: translate: unknown table "wardz"
}
