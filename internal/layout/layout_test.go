// Package layout holds tests of the module's shape: which package may
// import which (design.md, "Packages").
package layout

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/mllpd/mllpd"

// TestImportDirection: hl7 and mllp are leaves; store and hl7map may use hl7;
// config nothing of ours; hl7send only hl7 and mllp. Test files do not count.
func TestImportDirection(t *testing.T) {
	allowed := map[string][]string{
		"hl7":         nil,
		"mllp":        nil,
		"store":       {"hl7"},
		"hl7map":      {"hl7"},
		"config":      {"hl7", "hl7map"},
		"cmd/hl7send": {"hl7", "mllp"},
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ours := strings.CutPrefix(dep, module+"/")
			if ours && rel != pkg && !slices.Contains(ok, rel) {
				t.Errorf("%s must not import %s", pkg, rel)
			}
		}
	}
}

// TestNoFaultHookInRelease: the store's fault-injection hook exists only in
// builds with the faultinject tag.
func TestNoFaultHookInRelease(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.GoFiles}}", module+"/store").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "fault_on.go") {
		t.Errorf("store's release build includes fault_on.go: %s", out)
	}
	if !strings.Contains(string(out), "fault_off.go") {
		t.Errorf("store's release build lacks fault_off.go: %s", out)
	}
}
