//! What the map tests share: pointing the mouse at a shape of the map, as a person does, and
//! checking the colour it is painted in.

use std::time::Duration;

use fantoccini::Client;
use fantoccini::actions::{InputSource, MouseActions, PointerAction};

use crate::browser::wait_for;

/// Points the mouse at a spot inside the shape coded `fips` (a county's 5 digits or a state's
/// 2): whole client coordinates at which the browser's own hit test (`elementFromPoint`) finds
/// that path, nearest the middle of its box first, and the pointer goes exactly there. Returns
/// the hover text shown for it.
pub(crate) async fn hover(client: &Client, fips: &str) -> String {
    let spot = client
        .execute(
            "const path = document.querySelector(`#county-map path[data-fips='${arguments[0]}']`);
             path.scrollIntoView({ block: 'center' });
             const box = path.getBoundingClientRect();
             const [cx, cy] = [box.left + box.width / 2, box.top + box.height / 2];
             const spots = [];
             for (let y = Math.floor(box.top); y <= Math.ceil(box.bottom); y++)
               for (let x = Math.floor(box.left); x <= Math.ceil(box.right); x++)
                 if (x >= 0 && y >= 0 && x < window.innerWidth && y < window.innerHeight) spots.push([x, y]);
             spots.sort((a, b) => Math.hypot(a[0] - cx, a[1] - cy) - Math.hypot(b[0] - cx, b[1] - cy));
             return spots.find(([x, y]) => document.elementFromPoint(x, y) === path) || null;",
            vec![fips.into()],
        )
        .await
        .unwrap();
    let [x, y] = [0, 1].map(|i| {
        spot[i]
            .as_i64()
            .unwrap_or_else(|| panic!("no visible spot inside {fips}: {spot}"))
    });
    let mouse = MouseActions::new("mouse".to_owned()).then(PointerAction::MoveTo {
        duration: Some(Duration::from_millis(50)),
        x: x as f64,
        y: y as f64,
    });
    client
        .perform_actions(mouse)
        .await
        .expect("the mouse moves");
    wait_for(
        client,
        &format!("#county-tip[data-fips='{fips}']:not([hidden])"),
    )
    .await
    .text()
    .await
    .expect("the hover text")
}

/// Checks that the shape coded `fips` has the colour class `class` and is painted in the
/// colour of the legend's swatch for that class.
pub(crate) async fn assert_painted(client: &Client, fips: &str, class: &str) {
    let colours = client
        .execute(
            "const path = document.querySelector(`#county-map path[data-fips='${arguments[0]}']`);
             const swatch = document.querySelector(`#county-legend li[data-bin='${arguments[1]}'] .swatch`);
             return [path.getAttribute('class'), getComputedStyle(path).fill, getComputedStyle(swatch).backgroundColor];",
            vec![fips.into(), class.into()],
        )
        .await
        .unwrap();
    assert_eq!(colours[0], serde_json::json!(class), "{fips}'s class");
    assert_eq!(
        colours[1], colours[2],
        "{fips} is painted in its legend class's colour"
    );
}
