-- An org's admins set how many calls its campaigns may have in flight at once.
GRANT UPDATE (campaign_max_concurrent) ON organizations TO voxsouth_app;
