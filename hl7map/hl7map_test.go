package hl7map_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mllpd/mllpd/hl7"
	"github.com/mllpd/mllpd/hl7map"
)

var tables = map[string]map[string]string{
	"wards": {"W1": "WARD-ONE", "W2": "WARD&TWO", "W3": "W3"},
	"blank": {"": "UNKNOWN"},
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func parse(tb testing.TB, raw []byte) *hl7.Message {
	tb.Helper()
	m, err := hl7.Parse(raw)
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return m
}

// edit returns s with each old→new pair applied to the first occurrence; it
// fails the test when an old string is not in s, so a wrong expectation cannot
// pass by accident.
func edit(tb testing.TB, s string, pairs ...string) string {
	tb.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			tb.Fatalf("test bug: %q is not in the input", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func TestApply(t *testing.T) {
	tests := []struct {
		name  string
		in    string // testdata file
		rules []hl7map.Rule
		edits []string // old, new pairs applied to the input: the expected Encode()
	}{
		{
			name:  "set_receiving_system",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Set: "MSH-3", Value: "MLLPD"}, {Set: "MSH-4", Value: "HUB"}, {Set: "MSH-5", Value: "EPR"}, {Set: "MSH-6", Value: "CITY"}},
			edits: []string{"MSH|^~\\&|LAB|RXH|MLLPD|HUB|", "MSH|^~\\&|MLLPD|HUB|EPR|CITY|"},
		},
		{
			name:  "set_escapes_delimiters",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Set: "PID-5.2", Value: `A|B^C&D~E\`}},
			edits: []string{"DR. DOE^JOHN^Q", `DR. DOE^A\F\B\S\C\T\D\R\E\E\^Q`},
		},
		{
			name:  "set_custom_delimiters_escaped_with_targets_delimiters",
			in:    "custom_delims.hl7",
			rules: []hl7map.Rule{{Set: "PID-5.1", Value: "O#B$C"}},
			edits: []string{"##DOE$JANE", "##O!F!B!S!C$JANE"},
		},
		{
			name:  "set_null_literal",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Set: "PID-8", Value: `""`}},
			edits: []string{"|19700101|M\r", "|19700101|\"\"\r"},
		},
		{
			name:  "set_grows_segment",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Set: "PV1-5.2", Value: "X"}},
			edits: []string{"PV1|1|I|W1^101^A\r", "PV1|1|I|W1^101^A||^X\r"},
		},
		{
			name:  "copy_component_to_field",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Copy: "PID-3[1].1", To: "PID-2"}},
			edits: []string{"PID|1||12345", "PID|1|12345|12345"},
		},
		{
			name:  "copy_second_repetition",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Copy: "PID-3[2].1", To: "PID-2"}},
			edits: []string{"PID|1||12345", "PID|1|987|12345"},
		},
		{
			name:  "copy_carries_null", // reference §11.4 case 31
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Copy: "NK1-2", To: "PID-8"}},
			edits: []string{"|19700101|M\r", "|19700101|\"\"\r"},
		},
		{
			name:  "copy_keeps_escapes",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Copy: "OBX-5", To: "OBX-4"}},
			edits: []string{`NOTE^Note||A\F`, `NOTE^Note|A\F\B\S\C\T\D\R\E\E\|A\F`},
		},
		{
			name:  "copy_absent_source_clears_target",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Copy: "PID-30", To: "PID-8"}},
			edits: []string{"|19700101|M\r", "|19700101\r"},
		},
		{
			name:  "delete_field",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Delete: "PID-7"}},
			edits: []string{"|19700101|M\r", "||M\r"},
		},
		{
			name:  "delete_component",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Delete: "PID-5.2"}},
			edits: []string{"DR. DOE^JOHN^Q", "DR. DOE^^Q"},
		},
		{
			name:  "delete_z_segments",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Delete: "ZPI"}},
			edits: []string{"ZPI|1|VIP^Y\r", "", "ZPI|2|VIP^N\r", ""},
		},
		{
			name:  "delete_absent_field_is_noop",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Delete: "PID-30"}, {Delete: "ZZZ"}},
		},
		{
			name:  "replace_prefix",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Replace: "PID-5.1", Regex: `^DR\.? *`, With: ""}},
			edits: []string{"DR. DOE^", "DOE^"},
		},
		{
			name:  "replace_with_groups",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Replace: "PID-5.1", Regex: `^(DR)\. (\w+)$`, With: "${2}_$1"}},
			edits: []string{"DR. DOE^", "DOE_DR^"},
		},
		{
			name:  "replace_writes_escaped",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Replace: "PID-5.1", Regex: `\. `, With: "^"}},
			edits: []string{"DR. DOE^", `DR\S\DOE^`},
		},
		{
			name:  "replace_reads_decoded",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Replace: "OBX-5", Regex: `\|`, With: "/"}},
			edits: []string{`A\F\B`, `A/B`},
		},
		{
			name:  "replace_no_match_keeps_bytes",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Replace: "PID-5.1", Regex: `^XYZ`, With: "Q"}},
		},
		{
			name:  "replace_leaves_null",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Replace: "NK1-2", Regex: `.*`, With: "X"}},
		},
		{
			name:  "translate_found",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Translate: "PV1-3.1", Table: "wards", Default: "keep"}},
			edits: []string{"PV1|1|I|W1^", "PV1|1|I|WARD-ONE^"},
		},
		{
			name:  "translate_escapes_table_value",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Set: "PV1-3.1", Value: "W2"}, {Translate: "PV1-3.1", Table: "wards"}},
			edits: []string{"PV1|1|I|W1^", `PV1|1|I|WARD\T\TWO^`},
		},
		{
			name:  "translate_missing_keep",
			in:    "adt_a08_lf.hl7",
			rules: []hl7map.Rule{{Translate: "PV1-3.1", Table: "wards", Default: "keep"}},
		},
		{
			name:  "translate_missing_empty_default_keeps",
			in:    "adt_a08_lf.hl7",
			rules: []hl7map.Rule{{Translate: "PV1-3.1", Table: "wards"}},
		},
		{
			name:  "translate_missing_literal_default",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Set: "PV1-3.1", Value: "W7"}, {Translate: "PV1-3.1", Table: "wards", Default: "OTHER"}},
			edits: []string{"PV1|1|I|W1^", "PV1|1|I|OTHER^"},
		},
		{
			name:  "translate_absent_uses_empty_key",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Translate: "PV1-4", Table: "blank"}},
			edits: []string{"PV1|1|I|W1^101^A\r", "PV1|1|I|W1^101^A|UNKNOWN\r"},
		},
		{
			name:  "translate_leaves_null",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Translate: "NK1-2", Table: "blank", Default: "reject"}},
		},
		{
			name:  "copy_whole_field_all_repetitions",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Copy: "PID-3", To: "PID-4"}},
			edits: []string{"NH||DR. DOE", "NH|12345^^^RXH^MR~987^^^NHS^NH|DR. DOE"},
		},
		{
			name:  "copy_structured_into_component_escapes",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Copy: "PID-5", To: "PV1-3.2"}},
			edits: []string{"PV1|1|I|W1^101^A", `PV1|1|I|W1^DR. DOE\S\JOHN\S\Q^A`},
		},
		{
			name:  "translate_whole_field_keeps_other_repetitions",
			in:    "repeats.hl7",
			rules: []hl7map.Rule{{Translate: "PV1-3", Table: "wards"}},
			edits: []string{"|W1~W2|", "|WARD-ONE~W2|"},
		},
		{
			name:  "replace_whole_field_keeps_other_repetitions",
			in:    "repeats.hl7",
			rules: []hl7map.Rule{{Replace: "PV1-3", Regex: "^W", With: "Z"}},
			edits: []string{"|W1~W2|", "|Z1~W2|"},
		},
		{
			name:  "delete_field_with_empty_first_repetition",
			in:    "repeats.hl7",
			rules: []hl7map.Rule{{Delete: "PV1-4"}},
			edits: []string{"W1~W2|~X\r", "W1~W2\r"},
		},
		{
			name:  "absent_segment_untouched_by_replace_and_translate",
			in:    "repeats.hl7",
			rules: []hl7map.Rule{{Replace: "ZZZ-1", Regex: "^$", With: "X"}, {Translate: "ZZZ-1", Table: "blank"}},
		},
		{
			name: "rules_apply_in_order",
			in:   "adt_a01.hl7",
			rules: []hl7map.Rule{
				{Set: "PID-2", Value: "W2"},
				{Translate: "PID-2", Table: "wards"},
				{Copy: "PID-2", To: "PID-4"},
				{Delete: "PID-2"},
			},
			edits: []string{"PID|1||12345^^^RXH^MR~987^^^NHS^NH||", `PID|1||12345^^^RXH^MR~987^^^NHS^NH|WARD\T\TWO|`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := readTestdata(t, tt.in)
			mp, err := hl7map.Compile(tt.rules, tables)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			m := parse(t, raw)
			out, err := mp.Apply(m)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !bytes.Equal(m.Encode(), raw) {
				t.Errorf("Apply modified its input:\n%q", m.Encode())
			}
			want := edit(t, string(raw), tt.edits...)
			if diff := cmp.Diff(want, string(out.Encode())); diff != "" {
				t.Errorf("Apply (-want +got):\n%s", diff)
			}
			if _, err := hl7.Parse(out.Encode()); err != nil {
				t.Errorf("mapped output does not re-parse: %v", err)
			}
		})
	}
}

func TestApplyReject(t *testing.T) {
	mp, err := hl7map.Compile([]hl7map.Rule{
		{Set: "MSH-5", Value: "EPR"},
		{Translate: "PV1-3.1", Table: "wards", Default: "reject"},
	}, tables)
	if err != nil {
		t.Fatal(err)
	}
	m := parse(t, readTestdata(t, "adt_a08_lf.hl7")) // PV1-3 = W9, not in wards
	before := string(m.Encode())
	out, err := mp.Apply(m)
	if out != nil {
		t.Errorf("Apply returned a message with its error")
	}
	if !errors.Is(err, hl7map.ErrCodeNotInTable) {
		t.Fatalf("Apply error = %v, want ErrCodeNotInTable", err)
	}
	var ae *hl7map.ApplyError
	if !errors.As(err, &ae) || ae.Index != 1 || ae.Op != "translate" || ae.Path != "PV1-3.1" {
		t.Errorf("Apply error = %#v, want index 1, translate, PV1-3.1", err)
	}
	if strings.Contains(err.Error(), "W9") {
		t.Errorf("error %q holds the field value", err)
	}
	if got := string(m.Encode()); got != before {
		t.Errorf("input modified by a failed Apply")
	}

	// The same code through the table passes.
	ok := parse(t, readTestdata(t, "adt_a01.hl7"))
	if _, err := mp.Apply(ok); err != nil {
		t.Errorf("Apply with a known code: %v", err)
	}
}

func TestOutbound(t *testing.T) {
	rules := []hl7map.Rule{{Set: "MSH-5", Value: "EPR"}}
	tests := []struct {
		name  string
		in    string
		rules []hl7map.Rule
		keep  bool
		edits []string
	}{
		{
			name:  "unmapped_blanks_msh15_16",
			in:    "adt_a01.hl7",
			edits: []string{"|2.5.1|||AL|NE\r", "|2.5.1\r"},
		},
		{
			name: "unmapped_keep_is_byte_for_byte",
			in:   "adt_a01.hl7",
			keep: true,
		},
		{
			name:  "mapped_keep",
			in:    "adt_a01.hl7",
			rules: rules,
			keep:  true,
			edits: []string{"|MLLPD|HUB|2024", "|EPR|HUB|2024"},
		},
		{
			name:  "mapped_blanks",
			in:    "adt_a01.hl7",
			rules: rules,
			edits: []string{"|MLLPD|HUB|2024", "|EPR|HUB|2024", "|2.5.1|||AL|NE\r", "|2.5.1\r"},
		},
		{
			name:  "unmapped_lf_goes_out_cr",
			in:    "adt_a08_lf.hl7",
			edits: []string{"\n", "\r", "\n", "\r", "\n", "\r"},
		},
		{
			name:  "mapped_lf_goes_out_cr",
			in:    "adt_a08_lf.hl7",
			rules: []hl7map.Rule{{Delete: "PV1"}},
			edits: []string{"\n", "\r", "\n", "\r", "PV1|1|I|W9\n", ""},
		},
		{
			name:  "blanks_ack_fields_with_empty_first_repetition",
			in:    "ack_reps.hl7",
			edits: []string{"|2.5.1|||~AL|~\r", "|2.5.1\r"},
		},
		{
			name:  "rule_setting_msh15_wins_over_blanking",
			in:    "adt_a01.hl7",
			rules: []hl7map.Rule{{Set: "MSH-15", Value: "AL"}},
			edits: []string{"|2.5.1|||AL|NE\r", "|2.5.1|||AL\r"},
		},
		{
			name: "no_ack_fields_unmapped_byte_for_byte",
			in:   "custom_delims.hl7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := readTestdata(t, tt.in)
			var mp *hl7map.Mapping
			if tt.rules != nil {
				var err error
				if mp, err = hl7map.Compile(tt.rules, nil); err != nil {
					t.Fatal(err)
				}
			}
			m := parse(t, raw)
			got, err := hl7map.Outbound(m, mp, tt.keep)
			if err != nil {
				t.Fatalf("Outbound: %v", err)
			}
			want := edit(t, string(raw), tt.edits...)
			if diff := cmp.Diff(want, string(got)); diff != "" {
				t.Errorf("Outbound (-want +got):\n%s", diff)
			}
			if !bytes.Equal(m.Encode(), raw) {
				t.Errorf("Outbound modified its input")
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []hl7map.Rule
		want  []string // Error() of each *RuleError, in order
	}{
		{"unknown_table", []hl7map.Rule{{Set: "MSH-5", Value: "X"}, {Translate: "PV1-3.1", Table: "wardz"}},
			[]string{`map[1]: translate: unknown table "wardz"`}},
		{"no_operation", []hl7map.Rule{{Value: "X"}},
			[]string{`map[0]: rule: no operation (want one of set, copy, delete, translate, replace)`}},
		{"two_operations", []hl7map.Rule{{Set: "MSH-5", Copy: "MSH-3"}},
			[]string{`map[0]: rule: more than one operation (set, copy)`}},
		{"stray_argument", []hl7map.Rule{{Set: "MSH-5", Value: "X", Table: "wards"}},
			[]string{`map[0]: set: table is not used by set`}},
		{"copy_without_to", []hl7map.Rule{{Copy: "PID-3"}},
			[]string{`map[0]: copy: to is missing`}},
		{"copy_from_segment", []hl7map.Rule{{Copy: "PID", To: "PID-2"}},
			[]string{`map[0]: copy: path "PID" names a segment; copy needs a field`}},
		{"set_segment", []hl7map.Rule{{Set: "ZPI", Value: "X"}},
			[]string{`map[0]: set: path "ZPI" names a segment; set needs a field`}},
		{"set_msh2", []hl7map.Rule{{Set: "MSH-2", Value: "^~\\&"}},
			[]string{`map[0]: set: path "MSH-2": MSH-1 and MSH-2 hold the delimiters and cannot be written`}},
		{"copy_to_msh1", []hl7map.Rule{{Copy: "PID-3", To: "MSH-1"}},
			[]string{`map[0]: copy: path "MSH-1": MSH-1 and MSH-2 hold the delimiters and cannot be written`}},
		{"delete_msh", []hl7map.Rule{{Delete: "MSH"}},
			[]string{`map[0]: delete: the MSH segment cannot be deleted`}},
		{"delete_msh2", []hl7map.Rule{{Delete: "MSH-2.1"}},
			[]string{`map[0]: delete: path "MSH-2.1": MSH-1 and MSH-2 hold the delimiters and cannot be deleted`}},
		{"translate_without_table", []hl7map.Rule{{Translate: "PV1-3"}},
			[]string{`map[0]: translate: table is missing`}},
		{"replace_without_regex", []hl7map.Rule{{Replace: "PID-5"}},
			[]string{`map[0]: replace: regex is missing`}},
		{"every_error_at_once", []hl7map.Rule{
			{Set: "MSH-5", Value: "EPR"},
			{Translate: "PV1-3.1", Table: "wardz"},
			{Delete: "ZPI"},
			{Copy: "PID-3"},
		}, []string{`map[1]: translate: unknown table "wardz"`, `map[3]: copy: to is missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, err := hl7map.Compile(tt.rules, tables)
			if mp != nil {
				t.Errorf("Compile returned a Mapping with an error")
			}
			var errs hl7map.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Compile error = %v (%T), want hl7map.Errors", err, err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if err.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// TestCompileErrorsWrapped checks the errors that wrap another package's
// error: only the prefix is ours, and the cause stays reachable.
func TestCompileErrorsWrapped(t *testing.T) {
	tests := []struct {
		name   string
		rule   hl7map.Rule
		prefix string
	}{
		{"bad_path", hl7map.Rule{Set: "P!D-5", Value: "X"}, `map[0]: set: path "P!D-5": `},
		{"bad_target", hl7map.Rule{Copy: "PID-3", To: "PID-"}, `map[0]: copy: path "PID-": `},
		{"bad_regex", hl7map.Rule{Replace: "PID-5", Regex: "(", With: "x"}, `map[0]: replace: regex: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hl7map.Compile([]hl7map.Rule{tt.rule}, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.prefix) {
				t.Fatalf("Compile error = %v, want prefix %q", err, tt.prefix)
			}
			var re *hl7map.RuleError
			if !errors.As(err, &re) || re.Index != 0 || errors.Unwrap(re) == nil {
				t.Errorf("Compile error %#v: want a *RuleError with a cause", err)
			}
		})
	}
}

func TestRuleErrorReason(t *testing.T) {
	_, err := hl7map.Compile([]hl7map.Rule{{Translate: "PV1-3.1", Table: "wardz"}}, tables)
	var re *hl7map.RuleError
	if !errors.As(err, &re) {
		t.Fatalf("Compile error = %v", err)
	}
	if got, want := re.Reason(), `translate: unknown table "wardz"`; got != want {
		t.Errorf("Reason() = %q, want %q", got, want)
	}
}

func TestCompileCopiesTables(t *testing.T) {
	tbl := map[string]map[string]string{"wards": {"W1": "ONE"}}
	mp, err := hl7map.Compile([]hl7map.Rule{{Translate: "PV1-3.1", Table: "wards"}}, tbl)
	if err != nil {
		t.Fatal(err)
	}
	tbl["wards"]["W1"] = "CHANGED"
	out, err := mp.Apply(parse(t, readTestdata(t, "adt_a01.hl7")))
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Get(hl7.MustParsePath("PV1-3.1")); got != "ONE" {
		t.Errorf("PV1-3.1 = %q, want ONE (tables are copied at compile)", got)
	}
}

func TestNilMapping(t *testing.T) {
	var mp *hl7map.Mapping
	if mp.Len() != 0 {
		t.Errorf("nil Mapping Len = %d", mp.Len())
	}
	raw := readTestdata(t, "adt_a01.hl7")
	m := parse(t, raw)
	out, err := mp.Apply(m)
	if err != nil || !bytes.Equal(out.Encode(), raw) {
		t.Errorf("nil Mapping Apply = %q, %v", out.Encode(), err)
	}
	if out == m {
		t.Errorf("nil Mapping Apply returned its input, want a clone")
	}
}
