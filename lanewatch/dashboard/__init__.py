"""The Dash dashboard: ``app.create_dash`` mounts it; one module per page in ``pages``.

Figures (``figures``, ``flowfig``) and HTML pieces (``components``, ``tables``)
are pure builders over Query values; ``theme`` holds every colour.
"""
