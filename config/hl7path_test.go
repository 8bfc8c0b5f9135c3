package config

import (
	"regexp"
	"strconv"
	"testing"
)

func TestCheckHL7Path(t *testing.T) {
	tests := []struct {
		path  string
		field bool
		err   string // "" = valid
	}{
		{"PID", false, ""},
		{"ZPI", false, ""},
		{"OBX[3]", false, ""},
		{"PID-5", true, ""},
		{"PID-5.1", true, ""},
		{"PID-5.1.2", true, ""},
		{"PID-3[2].1", true, ""},
		{"PID-3[1].1.4", true, ""},
		{"OBX[3]-5", true, ""},
		{"OBX[3]-5[2].1.1", true, ""},
		{"MSH-9.2", true, ""},
		{"MSH-1", true, ""},
		{"Z01-1", true, ""},
		{"", false, "must start with a segment ID: a capital letter, then two capitals or digits"},
		{"PI", false, "must start with a segment ID: a capital letter, then two capitals or digits"},
		{"pid-3", false, "must start with a segment ID: a capital letter, then two capitals or digits"},
		{"1AB-3", false, "must start with a segment ID: a capital letter, then two capitals or digits"},
		{"PIDX-3", false, `unexpected 'X' after the segment (want -field)`},
		{"PID.3", false, `unexpected '.' after the segment (want -field)`},
		{"PID-", false, "want a field number"},
		{"PID-0", false, "field numbers start at 1"},
		{"PID-03", true, ""}, // leading zeros are still 3
		{"PID-x", false, "want a field number"},
		{"PID-3.", false, "want a component number"},
		{"PID-3.0", false, "component numbers start at 1"},
		{"PID-3.1.", false, "want a subcomponent number"},
		{"PID-3.1.2.3", false, "unexpected '.' after the subcomponent"},
		{"PID-3[", false, "want a repetition number"},
		{"PID-3[1", false, "repetition index is not closed with ]"},
		{"PID-3[0]", false, "repetition numbers start at 1"},
		{"PID-3[1][2]", false, "unexpected '[' (want .component)"},
		{"OBX[]-5", false, "want a segment occurrence number"},
		{"PID-10000", false, "field number above 9999"},
		{"PID-9999", true, ""},
		{"OBX[999999]-5", true, ""},
		{"OBX[1000000]-5", false, "segment occurrence number longer than 6 digits"},
		{"PID-0000003", false, "field number longer than 6 digits"},
		{"PID-3 ", false, "unexpected ' ' (want .component)"},
		{" PID-3", false, "must start with a segment ID: a capital letter, then two capitals or digits"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			field, err := checkHL7Path(tt.path)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Errorf("checkHL7Path(%q) error = %q, want %q", tt.path, got, tt.err)
			}
			if err == nil && field != tt.field {
				t.Errorf("checkHL7Path(%q) field = %v, want %v", tt.path, field, tt.field)
			}
		})
	}
}

// pathRE is the documented grammar as a regexp, the oracle for the fuzz target.
var pathRE = regexp.MustCompile(`^[A-Z][A-Z0-9]{2}(\[([0-9]{1,6})\])?(-([0-9]{1,6})(\[([0-9]{1,6})\])?(\.([0-9]{1,6})(\.([0-9]{1,6}))?)?)?$`)

// FuzzCheckHL7Path checks the hand-written scanner against the grammar's regexp: it
// accepts exactly the strings the regexp matches whose numbers are in range, and
// it calls a path a field path exactly when it has a "-field" part.
func FuzzCheckHL7Path(f *testing.F) {
	for _, s := range []string{"PID", "PID-5", "PID-3[2].1", "OBX[3]-5", "PID-5.1.2", "MSH-9.2", "PID-0", "PID-3[1", "ZPI", "PID-3.1.2.3", "PID-10000", "OBX[999999]-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		field, err := checkHL7Path(s)
		m := pathRE.FindStringSubmatch(s)
		want := m != nil
		if want {
			for _, i := range []int{2, 4, 6, 8, 10} {
				if m[i] == "" {
					continue
				}
				n, _ := strconv.Atoi(m[i])
				limit := maxPathIndex
				if i == 2 {
					limit = maxPathOccurrence
				}
				if n < 1 || n > limit {
					want = false
				}
			}
		}
		if (err == nil) != want {
			t.Fatalf("checkHL7Path(%q) = %v, grammar says valid=%v", s, err, want)
		}
		if err == nil && field != (m[3] != "") {
			t.Fatalf("checkHL7Path(%q) field = %v, want %v", s, field, m[3] != "")
		}
	})
}

func TestCheckHL7PathLeadingZeros(t *testing.T) {
	if _, err := checkHL7Path("PID-000003"); err != nil {
		t.Errorf("leading zeros: %v", err)
	}
}
