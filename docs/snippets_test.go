package docs_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
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

// TestCompileOnlyExamplesAreNamed keeps the guide's other claim honest:
// an Example function without an Output comment is compiled but never
// run, so each one must be named in the guide's list of compile-only
// examples, and must say so in its own doc comment.
func TestCompileOnlyExamplesAreNamed(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile("guide.md")
	if err != nil {
		t.Fatal(err)
	}
	intro, _, _ := strings.Cut(string(guide), "Each snippet names where it lives")
	found := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bench" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Example") {
				continue
			}
			found++
			if hasOutput(f, fn) {
				continue
			}
			name := fn.Name.Name
			if !strings.Contains(intro, "`"+name+"`") {
				t.Errorf("%s: %s has no Output comment, so it never runs; give it one, or name it in guide.md's list of compile-only examples", path, name)
			}
			if fn.Doc == nil || !strings.Contains(strings.Join(strings.Fields(fn.Doc.Text()), " "), "No Output line") {
				t.Errorf("%s: %s has no Output comment; its doc comment must say why (\"No Output line: ...\")", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 20 {
		t.Fatalf("found %d Example functions; the walk is broken", found)
	}
}

// hasOutput reports whether fn's body holds an "Output:" comment.
func hasOutput(f *ast.File, fn *ast.FuncDecl) bool {
	for _, cg := range f.Comments {
		if cg.Pos() < fn.Body.Lbrace || cg.End() > fn.Body.Rbrace {
			continue
		}
		for _, c := range cg.List {
			text := strings.TrimSpace(strings.TrimPrefix(c.Text, "//"))
			if strings.HasPrefix(text, "Output:") || strings.HasPrefix(text, "Unordered output:") {
				return true
			}
		}
	}
	return false
}
