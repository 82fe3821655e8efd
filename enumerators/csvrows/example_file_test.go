package csvrows_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/csvrows"
)

// A job imports the accounts of a CSV file. FromFile opens the file on each
// run and closes it when the run ends; it reports progress in bytes, which
// the runner asks for at checkpoints with the cursor reached.
func ExampleFromFile() {
	dir, err := os.MkdirTemp("", "csvrows-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "accounts.csv")
	data := "email,plan\n" +
		"ada@example.com,pro\n" +
		"zoe@example.com,free\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	type account struct {
		Email string `csv:"email"`
		Plan  string `csv:"plan"`
	}
	ctx := context.Background()
	e := csvrows.FromFile[account](path, nil, csvrows.Config{RequireHeader: true})
	progress := e.(enumerators.ProgressReporter[csvrows.Cursor])
	seq, finish := enumerators.All(ctx, e)
	for a, c := range seq {
		p, err := progress.Progress(ctx, &c)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s (%s): %d of %d %s\n", a.Email, a.Plan, p.Done, p.Total, p.Unit)
	}
	if err := finish(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// ada@example.com (pro): 31 of 52 bytes
	// zoe@example.com (free): 52 of 52 bytes
}
