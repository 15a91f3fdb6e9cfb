package docs_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestGuideSnippetsAreInTheCode keeps guide.md honest: every paragraph of
// every Go snippet in it must appear, whitespace aside, in a Go file of
// the repository, where it is compiled and, in an example or test, run.
func TestGuideSnippetsAreInTheCode(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile("guide.md")
	if err != nil {
		t.Fatal(err)
	}
	var code bytes.Buffer
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "vendor" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code.WriteString(squeeze(string(b)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := code.String()

	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(guide), -1)
	if len(blocks) < 15 {
		t.Fatalf("found %d Go snippets in guide.md; the pattern is broken", len(blocks))
	}
	for _, b := range blocks {
		for _, para := range strings.Split(b[1], "\n\n") {
			if strings.TrimSpace(para) == "" {
				continue
			}
			if !strings.Contains(all, squeeze(para)) {
				t.Errorf("this part of a guide.md snippet is in no Go file; copy it from the code it names:\n%s", para)
			}
		}
	}
}

// squeeze drops all white space, so that indentation and wrapping do not
// matter.
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}
