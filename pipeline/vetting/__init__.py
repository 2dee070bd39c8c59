"""Vetting: verdicts on candidates (a cube's sources, a galaxy set's neighbours) that last, are
shared by a team, and go in and out of other tools."""
