package main

import "testing"

func TestFillTouchesEveryPage(t *testing.T) {
	b := fill(2)
	if len(b) != 2*mib {
		t.Fatalf("fill(2) = %d bytes, want %d", len(b), 2*mib)
	}
	for i := 0; i < len(b); i += 4096 {
		if b[i] != byte(i) {
			t.Fatalf("page at %d not written", i)
		}
	}
}
