//! Totem core (under construction).
