//! Running what is placed here: the level-triggered node reconciler
//! ([`reconciler`]), on top of the resource drivers (`crate::drivers`).

pub mod reconciler;
