package config

import (
	"fmt"
	"testing"

	"github.com/mllpd/mllpd/hl7map"
)

// mapRuleOK validates one rule the way Validate does for a hand-built Config.
func mapRuleOK(r MapRule, tables map[string]map[string]string) []FieldError {
	v := &validator{given: func(_ string, nonZero bool) bool { return nonZero }, handBuilt: true}
	v.mapRule("r", r, tables)
	return v.errs
}

func compileOK(r MapRule, tables map[string]map[string]string) error {
	_, err := hl7map.Compile([]hl7map.Rule{{
		Set: r.Set, Value: r.Value, Copy: r.Copy, To: r.To, Delete: r.Delete, Translate: r.Translate,
		Table: r.Table, Default: r.Default, Replace: r.Replace, Regex: r.Regex, With: r.With,
	}}, tables)
	return err
}

var agreementTables = map[string]map[string]string{"wards": {"W1": "WARD-ONE"}}

var agreementRules = []MapRule{
	{Set: "MSH-5", Value: "EPR"}, {Set: "MSH-5"}, {Set: "MSH-2", Value: "x"}, {Set: "ZPI", Value: "x"},
	{Copy: "PID-3[1].1", To: "PID-2"}, {Copy: "PID-3"}, {Copy: "ZPI", To: "PID-2"}, {Copy: "MSH-2", To: "ZPI-1"},
	{Copy: "PID-3", To: "MSH-1"}, {Delete: "ZPI"}, {Delete: "MSH"}, {Delete: "MSH[2]"}, {Delete: "MSH-2"},
	{Delete: "MSH-12"}, {Delete: "PID-3[1].1"}, {Translate: "PV1-3.1", Table: "wards"},
	{Translate: "PV1-3.1", Table: "Wards"}, {Translate: "PV1-3.1"}, {Translate: "PV1-3.1", Table: "wards", Default: "reject"},
	{Replace: "PID-5.1", Regex: `^DR\.? *`}, {Replace: "PID-5.1", Regex: "("}, {Replace: "PID-5.1"},
	{Replace: "PID-5.1", Regex: "a", With: "$1"}, {Set: "PID-5", Copy: "PID-6"}, {}, {Set: "PID-5", Table: "wards"},
	{Delete: "ZPI", With: "x"}, {Set: "pid-5", Value: "x"}, {Set: "PID-10000", Value: "x"}, {Delete: "BHS-1"},
}

func TestMapRulesAgreeWithHL7Map(t *testing.T) {
	for _, r := range agreementRules {
		errs := mapRuleOK(r, agreementTables)
		err := compileOK(r, agreementTables)
		if (len(errs) == 0) != (err == nil) {
			t.Errorf("%+v: config says %v, hl7map.Compile says %v", r, errs, err)
		}
	}
}

// FuzzMapRulesAgreeWithHL7Map: config accepts a rule exactly when hl7map compiles it.
func FuzzMapRulesAgreeWithHL7Map(f *testing.F) {
	for _, r := range agreementRules {
		f.Add(r.Set, r.Value, r.Copy, r.To, r.Delete, r.Translate, r.Table, r.Replace, r.Regex)
	}
	f.Fuzz(func(t *testing.T, set, value, cp, to, del, translate, table, replace, regex string) {
		r := MapRule{Set: set, Value: value, Copy: cp, To: to, Delete: del, Translate: translate, Table: table, Replace: replace, Regex: regex}
		errs := mapRuleOK(r, agreementTables)
		err := compileOK(r, agreementTables)
		if (len(errs) == 0) != (err == nil) {
			t.Fatalf("%s: config says %v, hl7map.Compile says %v", fmt.Sprintf("%+v", r), errs, err)
		}
	})
}
