package keyset

import "strings"

// ownClause returns the first ORDER BY, LIMIT, OFFSET or FETCH clause at the
// top level of query (outside parentheses), or "" if there is none. Such a
// clause would order or cut the whole row set, not a page.
//
// It reads PostgreSQL's lexical structure just far enough to skip what
// cannot hold such a clause: string constants ('...', E'...' with backslash
// escapes, $tag$...$tag$), quoted identifiers ("..."), comments (-- and
// nested /* */), and everything inside parentheses, where an ORDER BY or
// LIMIT belongs to a subquery, a window or an aggregate. Keywords match
// without regard to case; identifiers that merely contain one (order_date)
// do not match. The rest is left to PostgreSQL, which reports a malformed
// query when the enumerator is built.
func ownClause(query string) string {
	depth := 0
	afterOrder := false // the last token, at the top level, was ORDER
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue // no token: ORDER may still be followed by BY
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				return ""
			}
			i += end + 1
			continue
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			i = skipBlockComment(query, i)
			continue
		case c == '\'' || c == '"':
			i = skipQuoted(query, i, false)
		case c == '$':
			if end, ok := skipDollarQuoted(query, i); ok {
				i = end
			} else {
				i++ // a parameter, $1
			}
		case identStart(c):
			j := i + 1
			for j < len(query) && identPart(query[j]) {
				j++
			}
			word := query[i:j]
			if j < len(query) && query[j] == '\'' && strings.EqualFold(word, "E") {
				i = skipQuoted(query, j, true)
				break
			}
			i = j
			if depth > 0 {
				break
			}
			switch {
			case afterOrder && strings.EqualFold(word, "BY"):
				return "ORDER BY"
			case strings.EqualFold(word, "LIMIT"), strings.EqualFold(word, "OFFSET"), strings.EqualFold(word, "FETCH"):
				return strings.ToUpper(word)
			}
			afterOrder = strings.EqualFold(word, "ORDER")
			continue
		case c == '(':
			depth++
			i++
		case c == ')':
			depth = max(depth-1, 0)
			i++
		default:
			i++ // an operator, a digit, a comma...
		}
		afterOrder = false
	}
	return ""
}

// identStart reports whether c starts an identifier or key word: a letter,
// an underscore, or a byte of a non-ASCII character.
func identStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

// identPart reports whether c continues an identifier or key word.
func identPart(c byte) bool {
	return identStart(c) || c >= '0' && c <= '9' || c == '$'
}

// skipQuoted returns the index after the string constant or quoted
// identifier that starts at q[i], or len(q) if it does not end. A doubled
// quote stands for itself; with backslash (an E'...' string) a backslash
// escapes the next byte too.
func skipQuoted(q string, i int, backslash bool) int {
	quote := q[i]
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			if backslash {
				j++
			}
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

// skipBlockComment returns the index after the comment that starts at q[i]
// ("/*"), or len(q) if it does not end. Block comments nest.
func skipBlockComment(q string, i int) int {
	depth := 0
	for j := i; j+1 < len(q); j++ {
		switch {
		case q[j] == '/' && q[j+1] == '*':
			depth++
			j++
		case q[j] == '*' && q[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(q)
}

// skipDollarQuoted returns the index after the dollar-quoted string that
// starts at q[i] ($$...$$ or $tag$...$tag$), or len(q) if it does not end;
// ok is false when q[i] starts no such string (a parameter, $1).
func skipDollarQuoted(q string, i int) (end int, ok bool) {
	j := i + 1
	if j < len(q) && identStart(q[j]) {
		for j++; j < len(q) && identPart(q[j]) && q[j] != '$'; j++ {
		}
	}
	if j >= len(q) || q[j] != '$' {
		return 0, false
	}
	delim := q[i : j+1]
	k := strings.Index(q[j+1:], delim)
	if k < 0 {
		return len(q), true
	}
	return j + 1 + k + len(delim), true
}
