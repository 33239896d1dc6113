"""Lab V1's checks (structured JSON logging and per-request cost): the lab's fixed inputs (`fixtures`), its seeded
reference day (`reference`) and one check per graded exercise (`checks`), which the notebook's locked check cells
call with the student's objects."""
