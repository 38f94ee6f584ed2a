package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"

	"github.com/kdiag/kdiag/engine/suite"
)

// junitSuites is the JUnit XML document CI systems read: one test suite
// per directory kdiag test ran, one test case per recording or test_*.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// add records the outcomes of the suite of directory dir.
func (j *junitSuites) add(dir string, outcomes []suite.Outcome) {
	s := junitSuite{Name: dir}
	for _, o := range outcomes {
		// "runbook/recording", or "path/x_test.star:test_fn".
		class, name, ok := strings.Cut(o.Name, "/")
		if file, fn, star := strings.Cut(o.Name, ".star:"); star {
			class, name = filepath.Base(file)+".star", fn
		} else if !ok {
			class, name = dir, o.Name
		}
		c := junitCase{Name: name, Classname: class}
		if o.Err != nil {
			// A Starlark traceback ends with the error itself.
			lines := strings.Split(strings.TrimSpace(o.Err.Error()), "\n")
			msg := strings.TrimSpace(lines[len(lines)-1])
			c.Failure = &junitFailure{Message: msg, Body: o.Err.Error()}
			s.Failures++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	j.Tests += s.Tests
	j.Failures += s.Failures
	j.Suites = append(j.Suites, s)
}

// write saves the document to path.
func (j *junitSuites) write(path string) error {
	b, err := xml.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}
