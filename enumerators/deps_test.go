package enumerators_test

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// drivers are the modules the driver packages wrap.
var drivers = []string{"github.com/jackc/pgx/", "github.com/gocarina/gocsv"}

// Importing iterable or enumerators links no driver: the PostgreSQL and CSV
// enumerators live in packages of their own, so a job package that uses
// neither does not pull pgx or gocsv into its binary. The driver packages are
// listed too, to show the check sees a driver where there is one.
func TestCoreLinksNoDriver(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the go command is needed to list dependencies: %v", err)
		}
		t.Skipf("the go command is needed to list dependencies: %v", err)
	}
	const module = "github.com/iterjob/iterjob/"
	cmd := exec.CommandContext(t.Context(), goTool, "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`,
		module+"iterable", module+"enumerators", module+"enumerators/keyset", module+"enumerators/csvrows")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())

	linked := make(map[string][]string) // package: the drivers it links
	for line := range strings.Lines(string(out)) {
		pkg, deps, _ := strings.Cut(strings.TrimSpace(line), " ")
		linked[pkg] = []string{}
		for _, dep := range strings.Fields(deps) {
			for _, d := range drivers {
				if strings.HasPrefix(dep, d) && !slices.Contains(linked[pkg], d) {
					linked[pkg] = append(linked[pkg], d)
				}
			}
		}
	}
	require.Empty(t, linked[module+"iterable"], "iterable links a driver")
	require.Empty(t, linked[module+"enumerators"], "enumerators links a driver")
	require.Equal(t, []string{"github.com/jackc/pgx/"}, linked[module+"enumerators/keyset"], "keyset links pgx alone")
	require.Equal(t, []string{"github.com/gocarina/gocsv"}, linked[module+"enumerators/csvrows"], "csvrows links gocsv alone")
}
