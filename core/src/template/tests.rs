//! Tables of templates, parameters and what they render to.

use serde_json::{Value, json};

use super::*;

fn params(v: Value) -> Params {
    match v {
        Value::Object(m) => m,
        other => panic!("params must be an object, got {other}"),
    }
}

const FAST: TemplateOptions = TemplateOptions {
    go_template: false,
    missing_key_error: false,
};
const GO: TemplateOptions = TemplateOptions {
    go_template: true,
    missing_key_error: false,
};
const GO_STRICT: TemplateOptions = TemplateOptions {
    go_template: true,
    missing_key_error: true,
};

/// Data most Go-template cases use.
fn data() -> Params {
    params(json!({
        "name": "web",
        "n": 3,
        "f": 1.5,
        "zero": 0,
        "empty": "",
        "yes": true,
        "no": false,
        "nothing": null,
        "list": ["a", "b", "c"],
        "nums": [3, 1, 2],
        "map": {"b": 2, "a": 1},
        "path": {"basename": "guestbook", "path": "apps/guestbook", "segments": ["apps", "guestbook"]},
        "values": {"env": "prod", "region": "eu-west-1"},
        "nested": {"inner": {"deep": "value"}},
        "Upper Case": "spaced",
    }))
}

/// Renders `cases` of (template, expected) with the Go engine over
/// [`data`].
fn check_go(cases: &[(&str, &str)]) {
    let data = data();
    for (template, want) in cases {
        match render_string(template, &data, &GO) {
            Ok(got) => assert_eq!(&got, want, "template {template:?}"),
            Err(e) => panic!("template {template:?} failed: {e}"),
        }
    }
}

/// Renders `cases` of (template, error substring) and expects errors.
fn check_go_errors(options: &TemplateOptions, cases: &[(&str, &str)]) {
    let data = data();
    for (template, want) in cases {
        match render_string(template, &data, options) {
            Ok(got) => {
                panic!("template {template:?} rendered {got:?}, want an error with {want:?}")
            }
            Err(e) => assert!(e.to_string().contains(want), "template {template:?}: {e}"),
        }
    }
}

#[test]
fn fasttemplate_replaces_known_keys_and_keeps_unknown_tags() {
    let p = params(json!({
        "path.basename": "guestbook",
        "path[0]": "apps",
        "values.env": "prod",
        "replicas": 3,
        "enabled": true,
        "gone": null,
    }));
    let cases = [
        ("{{path.basename}}", "guestbook"),
        ("{{ path.basename }}", "guestbook"),
        ("{{  path[0]  }}/{{values.env}}", "apps/prod"),
        ("app-{{path.basename}}-{{values.env}}", "app-guestbook-prod"),
        ("{{replicas}} {{enabled}}", "3 true"),
        ("[{{gone}}]", "[]"),
        ("{{unknown}} stays", "{{unknown}} stays"),
        (
            "{{ unknown }} keeps its spaces",
            "{{ unknown }} keeps its spaces",
        ),
        ("{{}} and {{ }}", "{{}} and {{ }}"),
        ("no tags", "no tags"),
        ("{{ .path.basename }}", "{{ .path.basename }}"),
        // Not templated on any one line: returned as is, like Argo CD.
        ("{{ path.basename", "{{ path.basename"),
        ("{{\npath.basename}}", "{{\npath.basename}}"),
        // The first `}}` closes the tag.
        ("{{ a {{path.basename}}", "{{ a {{path.basename}}"),
    ];
    for (template, want) in cases {
        assert_eq!(
            render_string(template, &p, &FAST).as_deref(),
            Ok(want),
            "{template:?}"
        );
    }
}

#[test]
fn fasttemplate_with_an_unclosed_tag_after_a_closed_one_is_an_error() {
    let p = params(json!({"a": "x"}));
    let err = render_string("{{a}} {{b", &p, &FAST).expect_err("unclosed");
    assert!(matches!(err, TemplateError::Parse { .. }), "{err}");
}

#[test]
fn render_value_renders_every_string_and_key_and_keeps_other_values() {
    let p = params(json!({"path": {"basename": "guestbook"}, "values": {"env": "prod"}}));
    let template = json!({
        "metadata": {
            "name": "{{ .path.basename }}-{{ .values.env }}",
            "labels": {"{{ .values.env }}": "yes"},
        },
        "spec": {
            "replicas": 3,
            "enabled": true,
            "none": null,
            "list": ["{{ .path.basename }}", 1],
        },
    });
    let got = render_value(&template, &p, &GO).expect("renders");
    assert_eq!(
        got,
        json!({
            "metadata": {"name": "guestbook-prod", "labels": {"prod": "yes"}},
            "spec": {"replicas": 3, "enabled": true, "none": null, "list": ["guestbook", 1]},
        })
    );
}

#[test]
fn go_fields_variables_and_literals() {
    check_go(&[
        ("plain text", "plain text"),
        ("{{ .name }}", "web"),
        ("{{.path.basename}}", "guestbook"),
        ("{{ .nested.inner.deep }}", "value"),
        ("{{ $.name }}", "web"),
        ("{{ . | len }}", "15"),
        (
            "{{ .n }} {{ .f }} {{ .yes }} {{ .list }} {{ .map }}",
            "3 1.5 true [a b c] map[a:1 b:2]",
        ),
        ("{{ .nothing }}", "<no value>"),
        ("{{ .missing }}", "<no value>"),
        ("{{ .missing.deeper }}", "<no value>"),
        ("{{ \"a\\tb\\n\" }}", "a\tb\n"),
        ("{{ `raw \\n` }}", "raw \\n"),
        (
            "{{ 42 }} {{ -7 }} {{ 0x1f }} {{ 1.25 }} {{ 1e3 }} {{ 'a' }}",
            "42 -7 31 1.25 1000 97",
        ),
        ("{{ true }} {{ false }}", "true false"),
        ("{{ $x := .name }}{{ $x }}", "web"),
        ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
        (
            "{{ $x := \"outer\" }}{{ if true }}{{ $x = \"inner\" }}{{ end }}{{ $x }}",
            "inner",
        ),
        (
            "{{ $x := \"outer\" }}{{ if true }}{{ $x := \"shadow\" }}{{ $x }}{{ end }} {{ $x }}",
            "shadow outer",
        ),
        ("{{ (index .path.segments 1) }}", "guestbook"),
        ("{{ (dict \"a\" (dict \"b\" \"c\")).a.b }}", "c"),
        ("{{ $m := .nested }}{{ $m.inner.deep }}", "value"),
        ("{{ index . \"Upper Case\" }}", "spaced"),
        ("a {{/* a comment */}} b", "a  b"),
        ("a {{- /* trimmed */ -}} b", "ab"),
    ]);
}

#[test]
fn go_trim_markers_remove_white_space_on_their_side() {
    check_go(&[
        ("a  {{- .name }}  b", "aweb  b"),
        ("a  {{ .name -}}  b", "a  webb"),
        ("a \n\t {{- .name -}} \n\t b", "awebb"),
        ("{{- .name -}}", "web"),
        ("x{{ 3 -}}\n\n{{- 4 }}y", "x34y"),
        ("{{ 3 -}}-{{ 4 }}", "3-4"),
    ]);
}

#[test]
fn go_if_else_if_else() {
    check_go(&[
        ("{{ if .yes }}y{{ end }}", "y"),
        ("{{ if .no }}y{{ else }}n{{ end }}", "n"),
        (
            "{{ if .no }}1{{ else if .zero }}2{{ else if .n }}3{{ else }}4{{ end }}",
            "3",
        ),
        (
            "{{ if .empty }}1{{ else if .nothing }}2{{ else }}3{{ end }}",
            "3",
        ),
        ("{{ if .missing }}1{{ else }}2{{ end }}", "2"),
        ("{{ if .list }}has{{ end }}", "has"),
        ("{{ if and .yes .n }}both{{ end }}", "both"),
        (
            "{{ if or .no .zero }}x{{ else }}neither{{ end }}",
            "neither",
        ),
        ("{{ if not .no }}not{{ end }}", "not"),
        ("{{ if $v := .name }}{{ $v }}{{ end }}", "web"),
        (
            "{{ if eq .values.env \"prod\" }}production{{ end }}",
            "production",
        ),
    ]);
}

#[test]
fn go_range_over_lists_maps_and_ints() {
    check_go(&[
        ("{{ range .list }}{{ . }},{{ end }}", "a,b,c,"),
        (
            "{{ range $i, $v := .list }}{{ $i }}={{ $v }} {{ end }}",
            "0=a 1=b 2=c ",
        ),
        ("{{ range $v := .list }}{{ $v }}{{ end }}", "abc"),
        (
            "{{ range $k, $v := .map }}{{ $k }}:{{ $v }};{{ end }}",
            "a:1;b:2;",
        ),
        ("{{ range .map }}{{ . }}{{ end }}", "12"),
        ("{{ range .empty_list }}x{{ else }}none{{ end }}", "none"),
        ("{{ range .missing }}x{{ else }}none{{ end }}", "none"),
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        (
            "{{ range .list }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
            "a",
        ),
        (
            "{{ range .list }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
            "ac",
        ),
        ("{{ range .list }}{{ $.name }}{{ end }}", "webwebweb"),
        (
            "{{ $n := 0 }}{{ range .list }}{{ $n = add $n 1 }}{{ end }}{{ $n }}",
            "3",
        ),
        (
            "{{ range $i, $s := .path.segments }}{{ if $i }}/{{ end }}{{ $s }}{{ end }}",
            "apps/guestbook",
        ),
    ]);
}

#[test]
fn go_with_define_template_block() {
    check_go(&[
        ("{{ with .values }}{{ .env }}{{ end }}", "prod"),
        (
            "{{ with .missing }}x{{ else }}fallback{{ end }}",
            "fallback",
        ),
        ("{{ with $v := .values.env }}{{ $v }}{{ end }}", "prod"),
        (
            "{{ with .no }}1{{ else with .name }}{{ . }}{{ end }}",
            "web",
        ),
        (
            "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" .name }}",
            "[web]",
        ),
        (
            "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" }}",
            "[<no value>]",
        ),
        ("{{ block \"b\" .values }}{{ .env }}{{ end }}", "prod"),
    ]);
}

#[test]
fn go_pipelines_pass_the_value_as_the_last_argument() {
    check_go(&[
        ("{{ .name | upper }}", "WEB"),
        ("{{ .name | printf \"%s-%s\" \"x\" }}", "x-web"),
        ("{{ .values.env | default \"dev\" | upper }}", "PROD"),
        ("{{ .missing | default \"dev\" }}", "dev"),
        (
            "{{ \"a-b\" | replace \"-\" \"_\" | upper | quote }}",
            "\"A_B\"",
        ),
        ("{{ (printf \"%d\" .n) | len }}", "1"),
    ]);
}

#[test]
fn go_builtins() {
    check_go(&[
        ("{{ len .list }} {{ len .name }} {{ len .map }}", "3 3 2"),
        (
            "{{ index .list 2 }} {{ index .map \"b\" }} {{ index .nested \"inner\" \"deep\" }}",
            "c 2 value",
        ),
        ("{{ index .map \"zzz\" }}", "<no value>"),
        (
            "{{ slice .list 1 }} {{ slice .list 1 2 }} {{ slice .name 1 }}",
            "[b c] [b] eb",
        ),
        ("{{ print \"a\" 1 2 \"b\" }}", "a1 2b"),
        ("{{ println \"a\" 1 }}", "a 1\n"),
        (
            "{{ eq .n 3 }} {{ eq .name \"x\" \"web\" }} {{ ne .n 4 }}",
            "true true true",
        ),
        (
            "{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2 }}",
            "true true true false",
        ),
        ("{{ eq .nothing nil }}", "true"),
        (
            "{{ html \"<a href='x'>&</a>\" }}",
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;",
        ),
        ("{{ js \"it's <b>\" }}", "it\\'s \\u003Cb\\u003E"),
        ("{{ urlquery \"a b&c=d/é\" }}", "a+b%26c%3Dd%2F%C3%A9"),
        (
            "{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ and 1 2 }}",
            "0 x 2",
        ),
        ("{{ or .missing.field \"fallback\" }}", "fallback"),
    ]);
}

#[test]
fn go_printf_verbs() {
    check_go(&[
        (
            "{{ printf \"%s|%d|%v|%t\" \"s\" 42 .list true }}",
            "s|42|[a b c]|true",
        ),
        ("{{ printf \"%q\" \"a\\\"b\\n\" }}", "\"a\\\"b\\n\""),
        (
            "{{ printf \"%5s|%-5s|%.2s\" \"ab\" \"ab\" \"abcd\" }}",
            "   ab|ab   |ab",
        ),
        (
            "{{ printf \"%05d|%+d|%x|%X|%o|%b\" 42 42 255 255 8 5 }}",
            "00042|+42|ff|FF|10|101",
        ),
        (
            "{{ printf \"%f|%.2f|%8.3f|%e|%g\" 1.5 3.14159 2.5 1234.5 0.0001 }}",
            "1.500000|3.14|   2.500|1.234500e+03|0.0001",
        ),
        ("{{ printf \"%x\" \"hi\" }}", "6869"),
        ("{{ printf \"%c|%U\" 65 65 }}", "A|U+0041"),
        (
            "{{ printf \"%v|%v|%d\" 1e6 123456.0 1000000 }}",
            "1e+06|123456|1000000",
        ),
        ("{{ repeat 2.0 \"ab\" }}", "abab"),
        ("{{ printf \"%v\" (float64 1000000) }}", "1e+06"),
        ("{{ printf \"%d%%\" 5 }}", "5%"),
        ("{{ printf \"%d\" }}", "%!d(MISSING)"),
        ("{{ printf \"%d\" \"x\" }}", "%!d(string=x)"),
        ("{{ printf \"x\" 1 }}", "x%!(EXTRA int=1)"),
        (
            "{{ printf \"%T %T %T\" 1 \"s\" .map }}",
            "int string map[string]interface {}",
        ),
    ]);
}

#[test]
fn go_missing_keys_print_no_value_by_default_and_fail_with_missingkey_error() {
    check_go(&[
        ("{{ .missing }}", "<no value>"),
        ("{{ .values.missing }}", "<no value>"),
    ]);
    let data = data();
    assert_eq!(
        render_string("{{ .values.env }}", &data, &GO_STRICT).as_deref(),
        Ok("prod")
    );
    // index and default still see nil, as in Go.
    assert_eq!(
        render_string(
            "{{ index .values \"zzz\" | default \"d\" }}",
            &data,
            &GO_STRICT
        )
        .as_deref(),
        Ok("d")
    );
    check_go_errors(
        &GO_STRICT,
        &[
            ("{{ .missing }}", "map has no entry for key \"missing\""),
            (
                "{{ .values.missing }}",
                "map has no entry for key \"missing\"",
            ),
            ("{{ .nothing.x }}", "nil pointer evaluating"),
        ],
    );
}

#[test]
fn go_parse_errors_are_parse_errors_with_a_reason() {
    let cases = [
        ("{{ if .x }}", "without {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ .x", "unclosed action"),
        ("{{ nosuchfunc 1 }}", "function \"nosuchfunc\" not defined"),
        ("{{ $y }}", "undefined variable \"$y\""),
        ("{{ $y = 1 }}", "undefined variable \"$y\""),
        ("{{ break }}", "outside {{range}}"),
        ("{{ (1 }}", "unclosed left paren"),
        ("{{ \"abc }}", "unterminated quoted string"),
        ("{{ .x | 3 }}", "non executable command in pipeline stage 2"),
        ("{{ }}", "missing value for command"),
        ("{{ env \"HOME\" }}", "function \"env\" not defined"),
        (
            "{{ expandenv \"$HOME\" }}",
            "function \"expandenv\" not defined",
        ),
        (
            "{{ getHostByName \"x\" }}",
            "function \"getHostByName\" not defined",
        ),
        (
            "{{ range .list }}{{ else if .x }}{{ end }}",
            "cannot follow {{range}}",
        ),
        (
            "{{ if true }}{{ define \"x\" }}{{ end }}{{ end }}",
            "inside a control structure",
        ),
    ];
    let data = data();
    for (template, want) in cases {
        match render_string(template, &data, &GO) {
            Err(TemplateError::Parse { message, .. }) => {
                assert!(message.contains(want), "{template:?}: {message}")
            }
            other => panic!("{template:?}: want a parse error with {want:?}, got {other:?}"),
        }
    }
}

#[test]
fn go_execution_errors_say_what_failed() {
    check_go_errors(
        &GO,
        &[
            (
                "{{ .name.first }}",
                "can't evaluate field first in type string",
            ),
            ("{{ index .list 5 }}", "index out of range: 5"),
            ("{{ upper .n }}", "expected string; got int"),
            ("{{ upper .missing }}", "invalid value; expected string"),
            ("{{ template \"nope\" }}", "no such template \"nope\""),
            ("{{ fail \"stop here\" }}", "stop here"),
            ("{{ eq .name 1 }}", "incompatible types for comparison"),
            ("{{ lt .list 1 }}", "comparison"),
            ("{{ range .name }}{{ end }}", "range can't iterate over web"),
            ("{{ .name 1 }}", "can't give argument to non-function"),
            ("{{ nil }}", "nil is not a command"),
            ("{{ div 1 0 }}", "integer divide by zero"),
            ("{{ call .name }}", "not supported"),
        ],
    );
}

#[test]
fn go_bounds_stop_runaway_templates_with_errors() {
    let mut deep_parens = String::from("{{ ");
    deep_parens.push_str(&"(".repeat(500));
    deep_parens.push('1');
    deep_parens.push_str(&")".repeat(500));
    deep_parens.push_str(" }}");
    let deep_ifs = format!(
        "{}x{}",
        "{{ if true }}".repeat(500),
        "{{ end }}".repeat(500)
    );
    let cases = [
        (
            "{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}",
            "steps of work",
        ),
        (
            "{{ range until 100000 }}0123456789012345678901234567890{{ end }}",
            "output larger than",
        ),
        ("{{ until 100000000 }}", "longer than"),
        ("{{ repeat 100000000 \"x\" }}", "larger than"),
        ("{{ printf \"%999999999d\" 1 }}", "larger than"),
        (
            "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
            "nest deeper",
        ),
        (
            "{{ $s := \"xx\" }}{{ range until 64 }}{{ $s = cat $s $s }}{{ end }}",
            "larger than",
        ),
        (
            "{{ $l := list 1 }}{{ range until 64 }}{{ $l = concat $l $l }}{{ end }}",
            "larger than",
        ),
        (
            "{{ $m := dict }}{{ range until 1000 }}{{ $m = dict \"x\" $m }}{{ end }}{{ toJson $m }}",
            "deeper",
        ),
        (
            "{{ $d := dict }}{{ $_ := set $d \"self\" $d }}",
            "cannot contain itself",
        ),
        (deep_parens.as_str(), "nests deeper"),
        (deep_ifs.as_str(), "nests deeper"),
    ];
    let data = data();
    for (template, want) in cases {
        match render_string(template, &data, &GO) {
            Ok(out) => panic!(
                "{:.80}: rendered {} bytes, want an error",
                template,
                out.len()
            ),
            Err(e) => assert!(e.to_string().contains(want), "{template:.80}: {e}"),
        }
    }
}

#[test]
fn go_deep_chain_built_by_set_is_bounded_and_dropped_safely() {
    let template = "{{ $root := dict }}{{ $cur := $root }}{{ range until 50000 }}{{ $n := dict }}\
                    {{ $_ := set $cur \"x\" $n }}{{ $cur = $n }}{{ end }}{{ toJson $root }}";
    let err = render_string(template, &data(), &GO).expect_err("too deep to print");
    assert!(err.to_string().contains("deeper"), "{err}");
}

#[test]
fn template_patch_merges_maps_replaces_lists_and_removes_nulls() {
    let app = json!({
        "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git", "path": "apps/web"},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
        },
    });
    let p = params(json!({"env": "prod", "auto": true, "opts": ["A=1", "B=2"]}));
    let cases: Vec<(&str, Value)> = vec![
        (
            "metadata:\n  labels:\n    env: '{{ .env }}'\n    b: null\n",
            json!({"name": "web", "labels": {"a": "1", "env": "prod"}}),
        ),
        (
            r#"{"metadata": {"name": "{{ .env }}-web"}}"#,
            json!({"name": "prod-web", "labels": {"a": "1", "b": "2"}}),
        ),
    ];
    for (patch, want_metadata) in cases {
        let got = apply_template_patch(app.clone(), patch, &p, &GO).expect(patch);
        assert_eq!(got["metadata"], want_metadata, "{patch}");
        assert_eq!(got["spec"], app["spec"], "{patch}");
    }

    let patch = r#"
spec:
  syncPolicy:
    syncOptions:
    {{- range .opts }}
    - {{ . }}
    {{- end }}
  {{- if .auto }}
    automated:
      prune: true
  {{- end }}
"#;
    let got = apply_template_patch(app.clone(), patch, &p, &GO).expect("patches");
    assert_eq!(
        got["spec"]["syncPolicy"],
        json!({"syncOptions": ["A=1", "B=2"], "automated": {"prune": true}})
    );
    assert_eq!(got["spec"]["source"], app["spec"]["source"]);
}

#[test]
fn template_patch_that_renders_empty_changes_nothing() {
    let app = json!({"metadata": {"name": "web"}});
    let p = params(json!({"auto": false}));
    let patch = "{{ if .auto }}\nspec:\n  x: 1\n{{ end }}\n";
    assert_eq!(apply_template_patch(app.clone(), patch, &p, &GO), Ok(app));
}

#[test]
fn template_patch_errors() {
    let app = json!({"metadata": {"name": "web"}});
    let p = params(json!({}));
    let cases = [
        ("- a\n- b\n", "must be a mapping, not a list"),
        ("just text", "must be a mapping, not a string"),
        ("a: [1,\n", "not valid YAML"),
        ("{\"a\": ", "not valid JSON"),
    ];
    for (patch, want) in cases {
        match apply_template_patch(app.clone(), patch, &p, &GO) {
            Err(TemplateError::Patch(m)) => assert!(m.contains(want), "{patch:?}: {m}"),
            other => panic!("{patch:?}: {other:?}"),
        }
    }
    let err = apply_template_patch(app, "{{ if }}", &p, &GO).expect_err("bad template");
    assert!(matches!(err, TemplateError::Parse { .. }));
}

#[test]
fn template_patch_with_fasttemplate() {
    let app = json!({"metadata": {"name": "web"}});
    let p = params(json!({"path.basename": "guestbook"}));
    let got = apply_template_patch(
        app,
        "metadata:\n  namespace: '{{path.basename}}'\n",
        &p,
        &FAST,
    )
    .expect("patches");
    assert_eq!(
        got,
        json!({"metadata": {"name": "web", "namespace": "guestbook"}})
    );
}

#[test]
fn options_read_missingkey_error_from_go_template_options() {
    let opts = TemplateOptions::new(true, &["missingkey=error".to_string()]);
    assert_eq!(opts, GO_STRICT);
    assert_eq!(TemplateOptions::new(true, &[]), GO);
    assert_eq!(
        TemplateOptions::new(false, &["missingkey=zero".to_string()]),
        FAST
    );
}

#[test]
fn sprig_string_functions() {
    check_go(&[
        (
            "{{ trim \"  a b  \" }}|{{ trimAll \"$\" \"$5.00$\" }}|{{ trimall \"x\" \"xax\" }}",
            "a b|5.00|a",
        ),
        (
            "{{ trimPrefix \"apps/\" .path.path }}|{{ trimSuffix \"book\" .path.basename }}",
            "guestbook|guest",
        ),
        (
            "{{ upper \"abc\" }}|{{ lower \"ABC\" }}|{{ title \"hello wide-world\" }}",
            "ABC|abc|Hello Wide-World",
        ),
        (
            "{{ untitle \"Hello World\" }}|{{ initials \"hello big world\" }}",
            "hello world|hbw",
        ),
        (
            "{{ repeat 3 \"ab\" }}|{{ nospace \" a b\\tc \" }}",
            "ababab|abc",
        ),
        (
            "{{ substr 1 3 \"hello\" }}|{{ substr -1 2 \"hello\" }}|{{ substr 2 99 \"hello\" }}",
            "el|he|llo",
        ),
        (
            "{{ trunc 3 \"hello\" }}|{{ trunc -2 \"hello\" }}|{{ trunc 10 \"hi\" }}",
            "hel|lo|hi",
        ),
        (
            "{{ abbrev 5 \"hello world\" }}|{{ abbrev 20 \"short\" }}",
            "he...|short",
        ),
        (
            "{{ contains \"ell\" \"hello\" }}|{{ hasPrefix \"he\" \"hello\" }}|{{ hasSuffix \"x\" \"hello\" }}",
            "true|true|false",
        ),
        (
            "{{ quote \"a\" 1 .nothing }}|{{ squote \"a\" \"b\" }}|{{ cat \"a\" 2 .nothing \"c\" }}",
            "\"a\" \"1\"|'a' 'b'|a 2 c",
        ),
        (
            "{{ indent 2 \"a\\nb\" }}|{{ nindent 2 \"a\" }}",
            "  a\n  b|\n  a",
        ),
        ("{{ replace \"-\" \"_\" \"a-b-c\" }}", "a_b_c"),
        (
            "{{ plural \"one\" \"many\" 1 }} {{ plural \"one\" \"many\" 2 }}",
            "one many",
        ),
        (
            "{{ snakecase \"FirstName\" }}|{{ snakecase \"HTTPServer\" }}|{{ snakecase \"some-words here\" }}",
            "first_name|http_server|some_words_here",
        ),
        (
            "{{ kebabcase \"FirstName\" }}|{{ camelcase \"http_server\" }}|{{ camelcase \"some-words\" }}",
            "first-name|HttpServer|SomeWords",
        ),
        ("{{ swapcase \"Hello World\" }}", "hELLO wORLD"),
        (
            "{{ wrap 5 \"hello big world\" }}|{{ wrapWith 5 \"\\t\" \"hello world\" }}",
            "hello\nbig\nworld|hello\tworld",
        ),
        (
            "{{ toString 5 }}|{{ toString .list }}|{{ toStrings .nums }}",
            "5|[a b c]|[3 1 2]",
        ),
        (
            "{{ join \",\" .list }}|{{ join \"-\" .nums }}|{{ join \",\" \"solo\" }}",
            "a,b,c|3-1-2|solo",
        ),
        (
            "{{ splitList \"/\" .path.path }}|{{ (split \"/\" .path.path)._1 }}",
            "[apps guestbook]|guestbook",
        ),
        ("{{ splitn \"-\" 2 \"a-b-c\" }}", "map[_0:a _1:b-c]"),
        (
            "{{ sortAlpha (list \"b\" \"c\" \"a\") }}|{{ sortAlpha .nums }}",
            "[a b c]|[1 2 3]",
        ),
    ]);
}

#[test]
fn sprig_regex_functions() {
    check_go(&[
        (
            "{{ regexMatch \"^[a-z]+$\" \"abc\" }}|{{ regexMatch \"(\" \"abc\" }}",
            "true|false",
        ),
        (
            "{{ regexFind \"[0-9]+\" \"ab12cd34\" }}|{{ regexFindAll \"[0-9]\" \"a1b2c3\" 2 }}",
            "12|[1 2]",
        ),
        ("{{ regexFindAll \"[0-9]\" \"a1b2c3\" -1 }}", "[1 2 3]"),
        (
            "{{ regexReplaceAll \"a(x*)b\" \"-ab-axxb-\" \"${1}W\" }}",
            "-W-xxW-",
        ),
        (
            "{{ regexReplaceAllLiteral \"a(x*)b\" \"-ab-axxb-\" \"${1}\" }}",
            "-${1}-${1}-",
        ),
        (
            "{{ regexSplit \"z+\" \"pizza\" -1 }}|{{ regexSplit \"z+\" \"pizza\" 0 }}",
            "[pi a]|[]",
        ),
        ("{{ regexQuoteMeta \"1.2+\" }}", "1\\.2\\+"),
    ]);
    check_go_errors(
        &GO,
        &[
            ("{{ regexFind \"(\" \"x\" }}", "error parsing regexp"),
            ("{{ mustRegexMatch \"(\" \"x\" }}", "error parsing regexp"),
        ],
    );
}

#[test]
fn sprig_default_flow_and_type_functions() {
    check_go(&[
        (
            "{{ default \"d\" .empty }}|{{ default \"d\" .name }}|{{ default 5 .zero }}|{{ default \"d\" }}",
            "d|web|5|d",
        ),
        (
            "{{ empty .empty }}|{{ empty .list }}|{{ empty .missing }}|{{ empty .no }}",
            "true|false|true|true",
        ),
        (
            "{{ coalesce .missing .empty \"x\" \"y\" }}|{{ coalesce .zero }}",
            "x|<no value>",
        ),
        (
            "{{ all 1 \"a\" true }}|{{ all 1 0 }}|{{ any 0 \"\" \"a\" }}|{{ any 0 }}",
            "true|false|true|false",
        ),
        (
            "{{ ternary \"y\" \"n\" true }}|{{ .no | ternary \"y\" \"n\" }}",
            "y|n",
        ),
        (
            "{{ kindOf .list }}|{{ kindOf .map }}|{{ kindOf 1 }}|{{ kindIs \"string\" .name }}",
            "slice|map|int|true",
        ),
        (
            "{{ typeOf .f }}|{{ typeIs \"bool\" .yes }}|{{ typeIsLike \"*string\" .name }}",
            "float64|true|true",
        ),
        (
            "{{ deepEqual .list (list \"a\" \"b\" \"c\") }}|{{ deepEqual .map (dict \"a\" 1) }}",
            "true|false",
        ),
    ]);
}

#[test]
fn sprig_json_and_argo_yaml_functions() {
    check_go(&[
        (
            "{{ toJson .map }}|{{ toJson .list }}|{{ toJson \"<&>\" }}",
            "{\"a\":1,\"b\":2}|[\"a\",\"b\",\"c\"]|\"\\u003c\\u0026\\u003e\"",
        ),
        (
            "{{ toRawJson \"<&>\" }}|{{ toJson (floor 2.7) }}|{{ toJson .nothing }}",
            "\"<&>\"|2|null",
        ),
        (
            "{{ toPrettyJson (dict \"a\" (list 1)) }}",
            "{\n  \"a\": [\n    1\n  ]\n}",
        ),
        (
            "{{ (fromJson \"{\\\"a\\\": {\\\"b\\\": 2}}\").a.b }}|{{ fromJsonArray \"[1,2]\" }}",
            "2|[1 2]",
        ),
        ("{{ toYaml .values }}", "env: prod\nregion: eu-west-1"),
        ("{{ toYaml .list }}", "- a\n- b\n- c"),
        (
            "{{ (fromYaml \"a:\\n  b: [1, 2]\").a.b }}|{{ fromYaml \"\" }}",
            "[1 2]|map[]",
        ),
        (
            "{{ fromYamlArray \"- x\\n- y\" }}|{{ index (fromYamlArray \"- {a: 1}\") 0 }}",
            "[x y]|map[a:1]",
        ),
        (
            "{{ range $k, $v := fromYaml \"b: 2\\na: 1\" }}{{ $k }}{{ $v }}{{ end }}",
            "a1b2",
        ),
    ]);
    check_go_errors(
        &GO,
        &[
            ("{{ fromYaml \"- a\" }}", "not a mapping"),
            ("{{ fromYamlArray \"a: 1\" }}", "not a sequence"),
            ("{{ fromYaml \"a: [\" }}", "error converting YAML"),
            ("{{ fromJson \"{\" }}", "EOF"),
        ],
    );
}

#[test]
fn sprig_number_functions() {
    check_go(&[
        (
            "{{ add 1 2 3 }}|{{ add1 .n }}|{{ sub 5 2 }}|{{ div 7 2 }}|{{ mod 7 2 }}|{{ mul 2 3 4 }}",
            "6|4|3|3|1|24",
        ),
        (
            "{{ add \"2\" 1.9 true }}|{{ max 1 5 3 }}|{{ biggest 2 4 }}|{{ min 4 2 8 }}",
            "4|5|4|2",
        ),
        (
            "{{ floor 1.7 }}|{{ ceil 1.2 }}|{{ round 2.456 2 }}|{{ round 2.5 0 }}|{{ round 2.4 0 }}",
            "1|2|2.46|3|2",
        ),
        (
            "{{ int \"42\" }}|{{ int 3.9 }}|{{ int64 \"0x10\" }}|{{ float64 \"1.5\" }}|{{ atoi \"12\" }}|{{ atoi \"x\" }}",
            "42|3|16|1.5|12|0",
        ),
        (
            "{{ addf 1.5 2 }}|{{ add1f 1.5 }}|{{ subf 5 1.5 }}|{{ mulf 1.5 2 }}|{{ divf 1 4 }}|{{ maxf 1 2.5 }}|{{ minf 1 2.5 }}",
            "3.5|2.5|3.5|3|0.25|2.5|1",
        ),
        ("{{ toDecimal \"0777\" }}", "511"),
        (
            "{{ until 3 }}|{{ until -2 }}|{{ untilStep 0 10 4 }}|{{ untilStep 5 0 -2 }}",
            "[0 1 2]|[0 -1]|[0 4 8]|[5 3 1]",
        ),
        (
            "{{ seq 3 }}|{{ seq 2 4 }}|{{ seq 4 2 }}|{{ seq 0 2 6 }}|{{ seq 0 -1 6 }}",
            "1 2 3|2 3 4|4 3 2|0 2 4 6|",
        ),
    ]);
}

#[test]
fn sprig_list_functions() {
    check_go(&[
        (
            "{{ list 1 \"a\" }}|{{ tuple }}|{{ first .list }}|{{ last .list }}|{{ first list }}",
            "[1 a]|[]|a|c|<no value>",
        ),
        ("{{ rest .list }}|{{ initial .list }}", "[b c]|[a b]"),
        (
            "{{ append .list \"d\" }}|{{ push .list \"d\" }}|{{ prepend .list \"z\" }}|{{ .list }}",
            "[a b c d]|[a b c d]|[z a b c]|[a b c]",
        ),
        (
            "{{ concat .list .nums (list) }}|{{ uniq (list 1 1 2 1) }}|{{ without .list \"b\" \"c\" }}",
            "[a b c 3 1 2]|[1 2]|[a]",
        ),
        (
            "{{ has \"b\" .list }}|{{ has \"z\" .list }}|{{ .list | has \"c\" }}",
            "true|false|true",
        ),
        (
            "{{ compact (list 1 \"\" 0 \"a\" .nothing) }}|{{ reverse .list }}",
            "[1 a]|[c b a]",
        ),
        (
            "{{ slice .nums 1 }}|{{ mustSlice .nums 0 1 }}|{{ chunk 2 (list 1 2 3) }}",
            "[1 2]|[3]|[[1 2] [3]]",
        ),
    ]);
    check_go_errors(
        &GO,
        &[
            ("{{ first .name }}", "cannot find first on type string"),
            ("{{ append .map 1 }}", "cannot append"),
        ],
    );
}

#[test]
fn sprig_dict_functions() {
    check_go(&[
        (
            "{{ dict \"a\" 1 \"b\" }}|{{ dict }}|{{ get .map \"a\" }}|{{ get .map \"zz\" }}",
            "map[a:1 b:]|map[]|1|",
        ),
        (
            "{{ $d := dict \"a\" 1 }}{{ $_ := set $d \"b\" 2 }}{{ $d }}",
            "map[a:1 b:2]",
        ),
        (
            "{{ $d := dict \"a\" 1 \"b\" 2 }}{{ $_ := unset $d \"a\" }}{{ $d }}|{{ hasKey $d \"b\" }}",
            "map[b:2]|true",
        ),
        (
            "{{ pluck \"a\" (dict \"a\" 1) (dict \"b\" 2) (dict \"a\" 3) }}",
            "[1 3]",
        ),
        (
            "{{ keys .map }}|{{ keys (dict \"x\" 1) (dict \"y\" 2) }}|{{ values .map }}",
            "[a b]|[x y]|[1 2]",
        ),
        (
            "{{ pick .map \"a\" }}|{{ omit .map \"a\" }}",
            "map[a:1]|map[b:2]",
        ),
        (
            "{{ $dst := dict \"a\" 1 \"n\" (dict \"x\" 1) \"e\" \"\" }}{{ $_ := merge $dst (dict \"a\" 2 \"b\" 3 \"e\" \"f\" \"n\" (dict \"x\" 9 \"y\" 2)) }}{{ $dst }}",
            "map[a:1 b:3 e:f n:map[x:1 y:2]]",
        ),
        (
            "{{ $dst := dict \"a\" 1 \"k\" true \"n\" (dict \"x\" 1) }}{{ $_ := mergeOverwrite $dst (dict \"a\" 2 \"k\" false \"n\" (dict \"x\" 9)) }}{{ $dst }}",
            "map[a:2 k:false n:map[x:9]]",
        ),
        (
            "{{ dig \"nested\" \"inner\" \"deep\" \"d\" . }}|{{ dig \"nested\" \"nope\" \"d\" . }}",
            "value|d",
        ),
        (
            "{{ $c := deepCopy .map }}{{ $_ := set $c \"z\" 0 }}{{ .map }} {{ $c }}",
            "map[a:1 b:2] map[a:1 b:2 z:0]",
        ),
    ]);
}

#[test]
fn sprig_encoding_and_path_functions() {
    check_go(&[
        (
            "{{ b64enc \"hello\" }}|{{ b64dec \"aGVsbG8=\" }}",
            "aGVsbG8=|hello",
        ),
        (
            "{{ sha1sum \"abc\" }}",
            "a9993e364706816aba3e25717850c26c9cd0d89d",
        ),
        (
            "{{ sha256sum \"abc\" }}",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            "{{ sha512sum \"\" | trunc 16 }}|{{ adler32sum \"Wikipedia\" }}",
            "cf83e1357eefb8bd|300286872",
        ),
        (
            "{{ base \"a/b/c.yaml\" }}|{{ dir \"a/b/c.yaml\" }}|{{ ext \"a/b/c.yaml\" }}|{{ clean \"a//b/../c/\" }}|{{ isAbs \"/x\" }}",
            "c.yaml|a/b|.yaml|a/c|true",
        ),
        (
            "{{ base \"\" }}|{{ dir \"file\" }}|{{ clean \"/../a\" }}",
            ".|.|/a",
        ),
    ]);
}

#[test]
fn argo_normalize_and_slugify() {
    let long = "a".repeat(300);
    let cases: Vec<(String, String)> = vec![
        (
            "{{ normalize \"My_App.Name!\" }}".into(),
            "my-app.name".into(),
        ),
        (
            "{{ normalize \"--Hello World--\" }}".into(),
            "hello-world".into(),
        ),
        ("{{ normalize \".x.\" }}".into(), "x".into()),
        (
            format!("{{{{ normalize \"{long}\" | len }}}}"),
            "253".into(),
        ),
        (
            "{{ slugify \"Hello, World! It's me\" }}".into(),
            "hello-world-it-s-me".into(),
        ),
        // normalize turns `_` into `-` before the slug keeps it.
        ("{{ slugify \"a.b__c\" }}".into(), "a-b-c".into()),
        (
            "{{ slugify 12 \"hello wonderful world\" }}".into(),
            "hello".into(),
        ),
        (
            "{{ slugify 12 false \"hello wonderful world\" }}".into(),
            "hello-wonder".into(),
        ),
        ("{{ slugify 5 \"abcdefghij\" }}".into(), "abcde".into()),
        (
            "{{ slugify 0 \"no limit at all here\" }}".into(),
            "no-limit-at-all-here".into(),
        ),
    ];
    let data = data();
    for (template, want) in cases {
        assert_eq!(
            render_string(&template, &data, &GO).as_deref(),
            Ok(want.as_str()),
            "{template}"
        );
    }
}

#[test]
fn argo_tpl_renders_a_string_as_a_template() {
    check_go(&[
        ("{{ tpl \"{{ .env }}-x\" .values }}", "prod-x"),
        ("{{ tpl \"[{{ .nope }}]\" .values }}", "[]"),
    ]);
    check_go_errors(&GO, &[("{{ tpl \"{{ if }}\" . }}", "missing value for if")]);
}

#[test]
fn arbitrary_template_text_never_panics() {
    // Pieces that stress the lexer and parser at their edges; a fixed LCG
    // keeps the test deterministic without a random-number crate.
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{{- ",
        " -}}",
        "-",
        " ",
        ".",
        "a",
        "$",
        "$x",
        ":=",
        "=",
        ",",
        "(",
        ")",
        "|",
        "\"",
        "`",
        "'",
        "\\",
        "if ",
        "else ",
        "end",
        "range ",
        "with ",
        "define ",
        "template ",
        "break",
        "1",
        "1.5",
        "0x",
        "é",
        "/*",
        "*/",
        "printf ",
        "\"%5.2v\" ",
        "until 3 ",
        "index ",
        "slice ",
        "substr 1 3 ",
        "trunc -2 ",
        "slugify 3 ",
        ".list ",
        ".name ",
        "nil ",
    ];
    let data = data();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let mut template = String::new();
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let len = (state >> 59) as usize + 1;
        for _ in 0..len {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            template.push_str(PIECES[(state >> 33) as usize % PIECES.len()]);
        }
        for options in [&FAST, &GO, &GO_STRICT] {
            let _ = render_string(&template, &data, options);
        }
    }
}
