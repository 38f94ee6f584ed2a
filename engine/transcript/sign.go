package transcript

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// SignaturePath returns where the signature of the transcript at path is
// kept: next to it, with ".sig" appended.
func SignaturePath(path string) string { return path + ".sig" }

const sigPrefix = "hmac-sha256="

// Sign writes the signature of the transcript at path: the HMAC-SHA256 of
// its bytes under key, as "hmac-sha256=HEX", mode 0600.
func Sign(path string, key []byte) error {
	sum, err := fileMAC(path, key)
	if err != nil {
		return fmt.Errorf("sign transcript: %w", err)
	}
	if err := os.WriteFile(SignaturePath(path), []byte(sigPrefix+hex.EncodeToString(sum)+"\n"), 0o600); err != nil {
		return fmt.Errorf("sign transcript: %w", err)
	}
	return nil
}

// ErrUnsigned is returned by Verify for a transcript without a signature.
var ErrUnsigned = errors.New("the transcript has no signature")

// Verify checks the signature of the transcript at path under key. It
// returns ErrUnsigned when there is none, and an error saying the
// transcript was altered when the signature does not match.
func Verify(path string, key []byte) error {
	b, err := os.ReadFile(SignaturePath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrUnsigned
	}
	if err != nil {
		return fmt.Errorf("verify transcript: %w", err)
	}
	want, err := hex.DecodeString(string(bytes.TrimPrefix(bytes.TrimSpace(b), []byte(sigPrefix))))
	if err != nil || !bytes.HasPrefix(b, []byte(sigPrefix)) {
		return fmt.Errorf("verify transcript: %s: malformed signature (want %sHEX)", SignaturePath(path), sigPrefix)
	}
	got, err := fileMAC(path, key)
	if err != nil {
		return fmt.Errorf("verify transcript: %w", err)
	}
	if !hmac.Equal(got, want) {
		return fmt.Errorf("verify transcript: %s does not match its signature %s: it was altered after the run, or signed with another key", path, SignaturePath(path))
	}
	return nil
}

func fileMAC(path string, key []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := hmac.New(sha256.New, key)
	if _, err := io.Copy(m, f); err != nil {
		return nil, err
	}
	return m.Sum(nil), nil
}
