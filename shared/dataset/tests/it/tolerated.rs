//! What a valid upstream file may look like without changing the result.

use crate::run;

const NYT: &str = "date,cases,deaths\n2020-01-22,1,0\n2020-01-23,2,0\n2020-01-24,3,1\n";
const JHU: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
                   2020-01-22,\"Korea, South\",,1,0,0\n\
                   2020-01-22,US,,1,0,0\n\
                   2020-01-23,US,,2,0,0\n\
                   2020-01-24,US,,3,1,1\n";

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn bom(text: &str) -> String {
    format!("\u{FEFF}{text}")
}

fn no_final_newline(text: &str) -> String {
    text.trim_end_matches('\n').to_owned()
}

#[test]
fn nyt_variants_give_the_same_result() {
    let expected = run(NYT, JHU);
    let variants: Vec<(&str, String)> = vec![
        ("CRLF line ends", crlf(NYT)),
        ("a UTF-8 BOM", bom(NYT)),
        ("no final newline", no_final_newline(NYT)),
        ("CRLF, BOM and no final newline", no_final_newline(&bom(&crlf(NYT)))),
        ("trailing blank lines", format!("{NYT}\n\n")),
        ("quoted fields", "\"date\",\"cases\",deaths\n\"2020-01-22\",\"1\",0\n2020-01-23,2,\"0\"\n2020-01-24,3,1\n".into()),
        ("quoted fields with CRLF", crlf("date,cases,deaths\n\"2020-01-22\",1,\"0\"\n2020-01-23,2,0\n2020-01-24,3,\"1\"")),
        ("reordered and extra columns", "x,deaths,date,cases\n,0,2020-01-22,1\n\"a,b\",0,2020-01-23,2\n,1,2020-01-24,3\n".into()),
        ("rows in any order", "date,cases,deaths\n2020-01-24,3,1\n2020-01-22,1,0\n2020-01-23,2,0\n".into()),
    ];
    for (what, nyt) in variants {
        assert_eq!(run(&nyt, JHU), expected, "NYT with {what}");
    }
}

#[test]
fn jhu_variants_give_the_same_result() {
    let expected = run(NYT, JHU);
    let with_lat_long = "Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\n\
                         2020-01-22,\"Korea, South\",,35.907757,127.766922,1,0,0\n\
                         2020-01-22,US,,40.0,-100.0,1,0,0\n\
                         2020-01-23,US,,40.0,-100.0,2,0,0\n\
                         2020-01-24,US,,40.0,-100.0,3,1,1\n";
    let variants: Vec<(&str, String)> = vec![
        ("Lat and Long columns", with_lat_long.into()),
        ("Lat and Long columns, CRLF", crlf(with_lat_long)),
        ("CRLF line ends", crlf(JHU)),
        ("a UTF-8 BOM", bom(JHU)),
        ("no final newline", no_final_newline(JHU)),
        ("a quoted US row", JHU.replace("2020-01-23,US,,2,0,0", "\"2020-01-23\",\"US\",\"\",\"2\",\"0\",\"0\"")),
        ("only the required columns", "Province/State,Recovered,Country/Region,Date\n,0,US,2020-01-22\n,0,US,2020-01-23\n,1,US,2020-01-24\n".into()),
        ("a quoted field spanning lines in another row", JHU.replace("Korea, South", "Korea,\nSouth")),
    ];
    for (what, jhu) in variants {
        assert_eq!(run(NYT, &jhu), expected, "JHU with {what}");
    }
}
