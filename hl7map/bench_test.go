package hl7map_test

import (
	"testing"

	"github.com/mllpd/mllpd/hl7map"
)

func BenchmarkOutbound(b *testing.B) {
	raw := readTestdata(b, "adt_a01.hl7")
	m := parse(b, raw)
	benches := []struct {
		name  string
		rules []hl7map.Rule
		keep  bool
	}{
		{"unmapped_keep", nil, true},
		{"unmapped_blank_ack_fields", nil, false},
		{"five_rules", []hl7map.Rule{
			{Set: "MSH-5", Value: "EPR"},
			{Copy: "PID-3[1].1", To: "PID-2"},
			{Delete: "ZPI"},
			{Translate: "PV1-3.1", Table: "wards", Default: "keep"},
			{Replace: "PID-5.1", Regex: `^DR\.? *`, With: ""},
		}, false},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			mp, err := hl7map.Compile(bb.rules, tables)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := hl7map.Outbound(m, mp, bb.keep); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
