package main

import "testing"

func TestCRLines(t *testing.T) {
	tests := []struct{ in, want string }{
		{"MSH|a\rPID|1\r", "MSH|a\nPID|1"},
		{"MSH|a\r\nPID|1\nZZZ", "MSH|a\nPID|1\nZZZ"},
		{"\x0bMSH|\x1b[2J\x1c", `\x0BMSH|\x1B[2J\x1C`},
	}
	for _, tt := range tests {
		if got := crLines([]byte(tt.in)); got != tt.want {
			t.Errorf("crLines(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
