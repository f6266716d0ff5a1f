//! Reading the files: syntax, encoding, limits, the header and the schema (the loader reports these).

use crate::catalog::Origin::Asctl;

rules! {
    LOADING_FAMILY;
    YAML_SYNTAX = {
        id: "AS0001",
        name: "yaml-syntax",
        severity: Error,
        title: "the file is not valid YAML",
        origin: Asctl,
        scope: Structural,
        fix: "fix the YAML syntax at the position shown (indentation, quotes, brackets, `:` after keys)",
        explanation: "asctl reads YAML 1.2. A syntax error stops the reading of the file at that point: documents before the error are still checked, the rest of the file is not.",
    }
    DUPLICATE_KEY = {
        id: "AS0002",
        name: "duplicate-key",
        severity: Error,
        title: "a key appears twice in the same mapping",
        origin: Asctl,
        scope: Structural,
        fix: "remove one of the two keys, or merge their values",
        explanation: "YAML forbids duplicate keys, but many parsers silently keep the last value, so the first one is lost without a word. asctl rejects the document instead, pointing at the second key and, as a related location, at the first.",
    }
    INVALID_ENCODING = {
        id: "AS0003",
        name: "invalid-encoding",
        severity: Error,
        title: "the file is not UTF-8",
        origin: Asctl,
        scope: Structural,
        fix: "save the file as UTF-8 (without a byte-order mark in other encodings)",
        explanation: "Configuration files must be UTF-8. The finding points at the first byte that is not valid UTF-8; nothing in the file is read.",
    }
    EMPTY_DOCUMENT = {
        id: "AS0004",
        name: "empty-document",
        severity: Warning,
        title: "a document is empty",
        origin: Asctl,
        scope: Structural,
        fix: "remove the empty document (often a stray `---`), or fill it in",
        explanation: "A document with no content (only comments, or nothing between two `---`) describes no object. It is ignored, and reported because it is often the sign of a file that lost its content.",
    }
    RESOURCE_LIMIT = {
        id: "AS0005",
        name: "resource-limit",
        severity: Error,
        title: "the file exceeds a safety limit (size, nesting depth or alias expansion)",
        origin: Asctl,
        scope: Structural,
        fix: "split the file, reduce nesting, or write values out instead of expanding aliases many times",
        explanation: "To stay fast and safe on hostile input, asctl limits each file to 32 MiB, nesting to 64 levels and the nodes created by alias expansion to 100,000 per file. A \"billion laughs\" file, whose aliases expand to billions of nodes, is rejected at the first alias that crosses the limit, in milliseconds.",
    }
    MISSING_HEADER = {
        id: "AS0006",
        name: "missing-header",
        severity: Error,
        title: "a document has no `apiVersion` or no `kind`",
        origin: Asctl,
        scope: Structural,
        fix: "start every document with `apiVersion: asctl/v1` and `kind: <Kind>`",
        explanation: "Every document is an object in the Kubernetes style: `apiVersion`, `kind`, `metadata` and `spec`. Without `apiVersion` and `kind` asctl cannot know which schema applies, so the rest of the document is not checked.",
    }
    UNKNOWN_API_VERSION = {
        id: "AS0007",
        name: "unknown-api-version",
        severity: Error,
        title: "the `apiVersion` is not one this asctl understands",
        origin: Asctl,
        scope: Structural,
        fix: "use `apiVersion: asctl/v1`",
        explanation: "The format is versioned so that it can evolve without breaking existing files. This build reads `asctl/v1` only.",
    }
    UNKNOWN_KIND = {
        id: "AS0008",
        name: "unknown-kind",
        severity: Error,
        title: "the `kind` is not one of Domain, Host, Node, NetworkLine, DataSource, ResourceGroup",
        origin: Asctl,
        scope: Structural,
        fix: "use one of the six kinds (they are case-sensitive)",
        explanation: "A domain is described by six kinds of object. A document of another kind cannot be checked; the finding suggests the closest kind.",
    }
    UNKNOWN_FIELD = {
        id: "AS0009",
        name: "unknown-field",
        severity: Error,
        title: "a field is not part of the format",
        origin: Asctl,
        scope: Structural,
        fix: "remove the field or correct its spelling",
        explanation: "Unknown fields are errors, not silently ignored: a misspelt optional field (`failBack` for `failback`) would otherwise leave the default in force without anyone noticing. The finding suggests the closest known field.",
    }
    WRONG_TYPE = {
        id: "AS0010",
        name: "wrong-type",
        severity: Error,
        title: "a value has the wrong type",
        origin: Asctl,
        scope: Structural,
        fix: "give a value of the expected type (quote strings that look like numbers, e.g. `\"3.5\"`)",
        explanation: "Each field has one type: string, integer, boolean, list or mapping. YAML guesses types from the text, so `version: 3.5` is a number and `version: \"3.5\"` a string; asctl does not guess back.",
    }
    INVALID_NAME = {
        id: "AS0011",
        name: "invalid-name",
        severity: Error,
        title: "a name breaks the naming rule",
        origin: Asctl,
        scope: Structural,
        fix: "use lower-case letters, digits and `-`, at most 63 characters, starting and ending with a letter or digit",
        explanation: "Names follow the DNS label rule, as in Kubernetes, so that they can be used as host names, file names and metric labels without escaping.",
    }
    MISSING_FIELD = {
        id: "AS0015",
        name: "missing-field",
        severity: Error,
        title: "a required field is missing",
        origin: Asctl,
        scope: Structural,
        fix: "add the field",
        explanation: "Some fields have no sensible default (a host's hypervisor, a line's subnet, a group's preferred nodes). The finding points at the object that lacks the field.",
    }
    INVALID_VALUE = {
        id: "AS0016",
        name: "invalid-value",
        severity: Error,
        title: "a value is not allowed for its field",
        origin: Asctl,
        scope: Structural,
        fix: "use a value the field accepts (the message names the allowed values or the expected form)",
        explanation: "Enumerations (`role: domain | verification`), formats (durations like `250ms`, addresses like `10.1.0.0/24`) and ranges are checked. The finding lists the allowed values and suggests the closest one.",
    }
    NOT_REGULAR_FILE = {
        id: "AS0020",
        name: "not-regular-file",
        severity: Error,
        title: "an input is not a regular file (a FIFO, a device, a socket)",
        origin: Asctl,
        scope: Structural,
        fix: "remove it from the configuration directory, or rename it so that it does not end in `.yaml` or `.yml`, or give the regular file it stands for",
        explanation: "Only regular files are read, whether named on the command line or found in a directory. A FIFO would make the command wait for a writer forever, and reading a device can have effects of its own or never end, so such a path is never opened: `validate`, `plan` and `watch` report it as this finding (at line 1 of the path) and read everything else. The example shows a configuration directory with a FIFO `pipe.yaml` next to it (made with `mkfifo`); a YAML text cannot be a FIFO, so `asctl explain` prints the regular file that goes with it.",
    }
}
